"""The send activities: one attempt to hand one email, or one batch, to the provider, classified.

Activity names `deliver_email` (kept from before: recorded histories and running workers
schedule it by that name) and `deliver_email_batch` (up to 100 emails in one provider call).
Every attempt of one send carries the same idempotency key (see
`activities.delivery_contract`), so a retry after a timeout or a worker crash is
deduplicated by the provider instead of sending twice. The transport is injected: Resend,
the local outbox, or a fake in tests.

Two guards come before the provider call:
- `not_after`: the provider deduplicates a key for 24 h after its first use; the workflow
  passes the end of its (shorter) send window and the activity refuses to call the provider
  past it, whenever Temporal runs it: late, retried or after a reset of the workflow.
- The pinned message: newer workflows do not repeat the message in every attempt's input
  (it would be recorded in history once per attempt); the activity reads it from the
  workflow that pinned it and sends it only if its digest is the one the workflow gave.

A failed attempt raises an `ApplicationError` whose message is our own words (HTTP status,
error type, whether the provider took it, what comes next): it is in clear in history, so
an operator reads it in the Web UI's row. The provider's text, which can quote a recipient,
is only in its details (`AttemptFailureDetails`, a payload the codec encrypts), with
`not_accepted` and `retry_may_duplicate` (from the transport's `capabilities`), from which
the workflow decides; results say whether delivery events will follow.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from typing import NoReturn, Protocol, TypeVar

from temporalio import activity
from temporalio.client import Client, WorkflowQueryFailedError, WorkflowQueryRejectedError
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory
from temporalio.service import RPCError

from activities import errors
from activities.delivery_contract import (
    PINNED_BATCH_QUERY,
    PINNED_MESSAGE_QUERY,
    batch_sha256,
    message_sha256,
)
from activities.transports.base import (
    EmailTransport,
    ProviderFailure,
    SentBatch,
    on_undeduplicated_send,
)
from activities.transports.failover import earlier_attempts
from activities.types import (
    AttemptFailureDetails,
    AttemptProgress,
    BatchAttemptInput,
    BatchAttemptResult,
    EmailMessage,
    SendAttemptInput,
    SendAttemptResult,
)

T = TypeVar("T")

# Reading the pinned message must leave most of the attempt's time to the provider call.
MAX_MESSAGE_READ = timedelta(seconds=10)


class PinnedMessages(Protocol):
    """Where the send activity reads the message its workflow pinned."""

    async def fetch(
        self, workflow_id: str, run_id: str, digest: str | None, timeout: timedelta
    ) -> EmailMessage: ...

    async def fetch_batch(
        self, workflow_id: str, run_id: str, digest: str, timeout: timedelta
    ) -> list[EmailMessage]: ...


class WorkflowPinnedMessages:
    """The `pinned_message` query of the workflow run that scheduled the attempt, asked by
    digest (a workflow may send several emails: an invitation and its reminder)."""

    def __init__(self, client: Client) -> None:
        self._client = client

    async def fetch(
        self, workflow_id: str, run_id: str, digest: str | None, timeout: timedelta
    ) -> EmailMessage:
        handle = self._client.get_workflow_handle(workflow_id, run_id=run_id)
        message: EmailMessage = await handle.query(
            PINNED_MESSAGE_QUERY, digest, result_type=EmailMessage, rpc_timeout=timeout
        )
        return message

    async def fetch_batch(
        self, workflow_id: str, run_id: str, digest: str, timeout: timedelta
    ) -> list[EmailMessage]:
        handle = self._client.get_workflow_handle(workflow_id, run_id=run_id)
        messages: list[EmailMessage] = await handle.query(
            PINNED_BATCH_QUERY, digest, result_type=list[EmailMessage], rpc_timeout=timeout
        )
        return messages


class _Attempt(Protocol):
    """What `_call` reads of an attempt's input (a single send's, a batch's, a call's)."""

    @property
    def attempt(self) -> int: ...


class _Clock:
    """When an attempt started (wall clock, for history) and how long it took (monotonic)."""

    def __init__(self) -> None:
        self.started_at = datetime.now(UTC).isoformat()
        self._started = time.monotonic()
        self.duration_ms = 0.0

    def elapsed_ms(self) -> float:
        return (time.monotonic() - self._started) * 1000

    def stop(self) -> None:
        self.duration_ms = round(self.elapsed_ms(), 1)


class SendActivities:
    """Provider-facing activities; the transport is injected (tests pass fakes or a fake URL)."""

    def __init__(self, transport: EmailTransport, messages: PinnedMessages | None = None) -> None:
        self._transport = transport
        self._messages = messages

    def _record_attempt(self, outcome: str, duration_ms: float, transport: str | None) -> None:
        # Exported by the worker's runtime (Prometheus on WORKER_METRICS_PORT); `transport`
        # is the provider that answered (a failover transport's member), else ours.
        labels = {"outcome": outcome, "transport": transport or self._transport.name}
        _count_provider_call(labels)
        activity.metric_meter().create_histogram(
            "email_provider_latency", "Provider answer time of one attempt", "ms"
        ).record(round(duration_ms), labels)

    def _record_failover(self, left: str | None, reason: str | None, to: str | None) -> None:
        """The failover transport moved the email within this attempt: the provider it left
        is counted with its outcome (a provider call of its own), and the move itself."""
        if left is None:
            return
        _count_provider_call({"outcome": reason or "", "transport": left})
        activity.metric_meter().create_counter(
            "email_failovers", "Emails moved to the next provider", "{email}"
        ).add(1, {"from": left, "to": to or self._transport.name, "reason": reason or ""})

    @activity.defn(name="deliver_email")
    async def send_email(self, data: SendAttemptInput) -> SendAttemptResult:
        """Hand one email to the provider once; classify a failure as transient or permanent."""
        clock = _Clock()
        _check_window(data.not_after, data.attempt, clock.started_at)
        message = (
            data.message
            if data.message is not None
            else await self._pinned_message(data, clock.started_at)
        )
        read_ms = clock.elapsed_ms()
        # A retry by Temporal itself (not by the engine's loop) is one the engine's list
        # cannot cover: it may follow an attempt that reached a provider, so no failover.
        retried_by_server = activity.info().attempt > 1
        with earlier_attempts(
            max(data.attempt, activity.info().attempt),
            None if retried_by_server else data.may_have_been_taken_by,
        ):
            call = self._transport.send(message, data.idempotency_key)
            sent = await self._call(call, data, clock)
        transport = sent.transport or self._transport.name
        self._record_failover(sent.failover_from, sent.failover_reason, transport)
        activity.logger.info(
            "send attempt %d accepted by %s in %.0f ms (message read in %.0f ms)%s",
            data.attempt,
            transport,
            clock.duration_ms,
            read_ms,
            f" after {sent.failover_from} failed ({sent.failover_reason})"
            if sent.failover_from
            else "",
        )
        return SendAttemptResult(
            provider_message_id=sent.provider_message_id,
            http_status=sent.http_status,
            transport=transport,
            started_at=clock.started_at,
            duration_ms=clock.duration_ms,
            reports_delivery_events=self._reports_events(sent.reports_delivery_events),
            failover_from=sent.failover_from,
            failover_reason=sent.failover_reason,
        )

    @activity.defn(name="deliver_email_batch")
    async def send_batch(self, data: BatchAttemptInput) -> BatchAttemptResult:
        """Hand up to 100 emails to the provider in one call; a failure of the call is
        classified as a single send's is, an email the provider refuses is in its item."""
        clock = _Clock()
        _check_window(data.not_after, data.attempt, clock.started_at)
        messages = (
            data.messages
            if data.messages is not None
            else await self._pinned_batch(data.messages_sha256, clock.started_at)
        )
        call = self._transport.send_batch(messages, data.idempotency_key)
        sent = await self._call(call, data, clock)
        refused = sum(1 for item in sent.items if item.refusal is not None)
        transport = sent.transport or self._transport.name
        activity.logger.info(
            "batch attempt %d: %d of %d emails accepted by %s in %.0f ms",
            data.attempt,
            len(sent.items) - refused,
            len(sent.items),
            transport,
            clock.duration_ms,
        )
        return self._batch_result(sent, clock)

    def _reports_events(self, reported: bool | None) -> bool:
        """Whether delivery events will come for what was sent: as the provider that took
        it says (behind failover, that one), else as the transport says of itself."""
        if reported is not None:
            return reported
        return self._transport.capabilities.reports_delivery_events

    def _batch_result(self, sent: SentBatch, clock: _Clock) -> BatchAttemptResult:
        """A batch call the provider took, as its attempt's result."""
        return BatchAttemptResult(
            items=sent.items,
            http_status=sent.http_status,
            transport=sent.transport or self._transport.name,
            started_at=clock.started_at,
            duration_ms=clock.duration_ms,
            reports_delivery_events=self._reports_events(sent.reports_delivery_events),
        )

    async def _call(self, call: Awaitable[T], data: _Attempt, clock: _Clock) -> T:
        """The provider call of one attempt, timed and counted; a failure classified."""
        try:
            with on_undeduplicated_send(_heartbeat_progress):
                sent = await call
        except ProviderFailure as failure:
            raise self._failed(failure, data.attempt, clock) from None
        clock.stop()
        self._record_attempt("accepted", clock.duration_ms, getattr(sent, "transport", None))
        return sent

    def _failed(self, failure: ProviderFailure, attempt: int, clock: _Clock) -> ApplicationError:
        """The attempt's failure as the workflow reads it: typed, with what the provider
        did (`not_accepted`) and whether a retry is safe (`retry_may_duplicate`)."""
        not_accepted = failure.error_type in errors.NOT_ACCEPTED
        # Outcome unknown and nothing to deduplicate a retry: the workflow must not retry.
        dedupes = failure.deduplicates_by_key
        if dedupes is None:
            dedupes = self._transport.capabilities.deduplicates_by_key
        may_duplicate = not not_accepted and not dedupes
        clock.stop()
        self._record_failover(failure.failover_from, failure.failover_reason, failure.transport)
        self._record_attempt(failure.error_type, clock.duration_ms, failure.transport)
        # The provider's message can quote a recipient: it goes only into the failure's
        # (encrypted) details; the log line and the failure's message say type and status.
        activity.logger.warning(
            "send attempt %d failed: %s (HTTP %s)",
            attempt,
            failure.error_type,
            failure.http_status or "-",
        )
        details = AttemptFailureDetails(
            http_status=failure.http_status,
            provider_error=failure.provider_error,
            started_at=clock.started_at,
            duration_ms=clock.duration_ms,
            retry_after_seconds=failure.retry_after_seconds,
            not_accepted=not_accepted,
            retry_may_duplicate=may_duplicate,
            provider_message=failure.provider_message,
            transport=failure.transport or self._transport.name,
            failover_from=failure.failover_from,
            failover_reason=failure.failover_reason,
        )
        permanent = failure.error_type in errors.PERMANENT_ERRORS or may_duplicate
        return _attempt_error(failure.message, failure.error_type, details, permanent)

    async def _pinned_message(self, data: SendAttemptInput, started_at: str) -> EmailMessage:
        """The message the workflow pinned, checked against the digest it gave."""
        messages, workflow_id, run_id, timeout = self._pinned_source()
        try:
            message = await messages.fetch(workflow_id, run_id, data.message_sha256, timeout)
        except (RPCError, WorkflowQueryFailedError, WorkflowQueryRejectedError) as err:
            _unavailable(err, started_at)
        if message_sha256(message) != data.message_sha256:
            _mismatch(started_at)
        return message

    async def _pinned_batch(self, digest: str | None, started_at: str) -> list[EmailMessage]:
        """The batch's messages as the workflow pinned them, checked against its digest."""
        if digest is None:
            _mismatch(started_at)
        messages, workflow_id, run_id, timeout = self._pinned_source()
        try:
            batch = await messages.fetch_batch(workflow_id, run_id, digest, timeout)
        except (RPCError, WorkflowQueryFailedError, WorkflowQueryRejectedError) as err:
            _unavailable(err, started_at)
        if batch_sha256(batch) != digest:
            _mismatch(started_at)
        return batch

    def _pinned_source(self) -> tuple[PinnedMessages, str, str, timedelta]:
        """Where to read the pinned message(s): this attempt's workflow run, and how long."""
        if self._messages is None:
            raise RuntimeError("this worker cannot read pinned messages (no Temporal client)")
        info = activity.info()
        timeout = min((info.start_to_close_timeout or MAX_MESSAGE_READ * 3) / 3, MAX_MESSAGE_READ)
        return self._messages, info.workflow_id or "", info.workflow_run_id or "", timeout


def _heartbeat_progress(transport: str) -> None:
    # The only heartbeat of an attempt, so the SDK sends it at once (no throttling yet).
    activity.heartbeat(AttemptProgress(transport=transport))


def _count_provider_call(labels: dict[str, str]) -> None:
    activity.metric_meter().create_counter(
        "email_send_attempts", "Provider send attempts", "{attempt}"
    ).add(1, labels)


def _check_window(not_after: str | None, attempt: int, started_at: str) -> None:
    """Refuse an attempt that starts after the send window (the provider is not called)."""
    if not_after is not None and datetime.now(UTC) > datetime.fromisoformat(not_after):
        _refuse(
            errors.SEND_WINDOW_CLOSED,
            f"not sent: attempt {attempt} started after the send window ended "
            f"({not_after}); the provider was not called",
            started_at,
        )


def _unavailable(err: Exception, started_at: str) -> NoReturn:
    _refuse(
        errors.MESSAGE_UNAVAILABLE,
        f"not sent: could not read the pinned message ({type(err).__name__}); "
        "the provider was not called",
        started_at,
        permanent=False,
    )


def _mismatch(started_at: str) -> NoReturn:
    _refuse(
        errors.MESSAGE_MISMATCH,
        "not sent: the workflow answered another message than the one it pinned",
        started_at,
    )


def _refuse(error_type: str, text: str, started_at: str, *, permanent: bool = True) -> NoReturn:
    """Fail the attempt without calling the provider (so it provably did not accept it)."""
    activity.logger.warning("send attempt refused before the provider call: %s", error_type)
    details = AttemptFailureDetails(
        http_status=None,
        provider_error=None,
        started_at=started_at,
        duration_ms=0.0,
        not_accepted=True,
    )
    # `from None`: a failure's cause is converted too, in clear; ours says all there is.
    raise _attempt_error(text, error_type, details, permanent) from None


def _attempt_error(
    what: str, error_type: str, details: AttemptFailureDetails, permanent: bool
) -> ApplicationError:
    """A failed attempt whose message (shown in clear in the Web UI's rows) is our own words:
    what happened, its type, whether the provider took it, what comes next. The provider's
    own text is in `details` only (payloads, which the codec encrypts)."""
    taken = "not accepted" if details.not_accepted else "may have been accepted"
    if details.retry_may_duplicate:
        then = "not retried: this transport cannot deduplicate a retry"
    elif permanent:
        then = "permanent"
    elif details.retry_after_seconds is not None:
        then = f"retryable after {details.retry_after_seconds:g} s"
    else:
        then = "retryable"
    return ApplicationError(
        f"{what} ({error_type}): {taken}, {then}",
        details,
        type=error_type,
        non_retryable=permanent,
        # Transient provider trouble is expected: our own warning is enough, the SDK need
        # not log a stack trace or count it as a task failure.
        category=ApplicationErrorCategory.UNSPECIFIED
        if permanent
        else ApplicationErrorCategory.BENIGN,
    )
