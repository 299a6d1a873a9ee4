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
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import NoReturn, Protocol

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
from activities.transports.base import EmailTransport, ProviderFailure
from activities.types import (
    AttemptFailureDetails,
    BatchAttemptInput,
    BatchAttemptResult,
    EmailMessage,
    SendAttemptInput,
    SendAttemptResult,
)

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


class SendActivities:
    """Provider-facing activities; the transport is injected (tests pass fakes or a fake URL)."""

    def __init__(self, transport: EmailTransport, messages: PinnedMessages | None = None) -> None:
        self._transport = transport
        self._messages = messages

    def _record_attempt(self, outcome: str, duration_ms: float) -> None:
        # Exported by the worker's runtime (Prometheus on WORKER_METRICS_PORT).
        meter = activity.metric_meter()
        labels = {"outcome": outcome, "transport": self._transport.name}
        meter.create_counter("email_send_attempts", "Provider send attempts", "{attempt}").add(
            1, labels
        )
        meter.create_histogram(
            "email_provider_latency", "Provider answer time of one attempt", "ms"
        ).record(round(duration_ms), labels)

    @activity.defn(name="deliver_email")
    async def send_email(self, data: SendAttemptInput) -> SendAttemptResult:
        """Hand one email to the provider once; classify a failure as transient or permanent."""
        started_at = datetime.now(UTC).isoformat()
        started = time.monotonic()
        _check_window(data.not_after, data.attempt, started_at)
        message = (
            data.message
            if data.message is not None
            else await self._pinned_message(data, started_at)
        )
        read_ms = (time.monotonic() - started) * 1000
        try:
            sent = await self._transport.send(message, data.idempotency_key)
        except ProviderFailure as failure:
            raise self._failed(failure, data.attempt, started_at, started) from None
        duration_ms = (time.monotonic() - started) * 1000
        self._record_attempt("accepted", duration_ms)
        activity.logger.info(
            "send attempt %d accepted by %s in %.0f ms (message read in %.0f ms)",
            data.attempt,
            self._transport.name,
            duration_ms,
            read_ms,
        )
        return SendAttemptResult(
            provider_message_id=sent.provider_message_id,
            http_status=sent.http_status,
            transport=self._transport.name,
            started_at=started_at,
            duration_ms=round(duration_ms, 1),
            reports_delivery_events=getattr(self._transport, "reports_delivery_events", True),
        )

    @activity.defn(name="deliver_email_batch")
    async def send_batch(self, data: BatchAttemptInput) -> BatchAttemptResult:
        """Hand up to 100 emails to the provider in one call; a failure of the call is
        classified as a single send's is, an email the provider refuses is in its item."""
        started_at = datetime.now(UTC).isoformat()
        started = time.monotonic()
        _check_window(data.not_after, data.attempt, started_at)
        messages = (
            data.messages
            if data.messages is not None
            else await self._pinned_batch(data.messages_sha256, started_at)
        )
        try:
            sent = await self._transport.send_batch(messages, data.idempotency_key)
        except ProviderFailure as failure:
            raise self._failed(failure, data.attempt, started_at, started) from None
        duration_ms = (time.monotonic() - started) * 1000
        self._record_attempt("accepted", duration_ms)
        refused = sum(1 for item in sent.items if item.refusal is not None)
        activity.logger.info(
            "batch attempt %d: %d of %d emails accepted by %s in %.0f ms",
            data.attempt,
            len(sent.items) - refused,
            len(sent.items),
            self._transport.name,
            duration_ms,
        )
        return BatchAttemptResult(
            items=sent.items,
            http_status=sent.http_status,
            transport=self._transport.name,
            started_at=started_at,
            duration_ms=round(duration_ms, 1),
            reports_delivery_events=getattr(self._transport, "reports_delivery_events", True),
        )

    def _failed(
        self, failure: ProviderFailure, attempt: int, started_at: str, started: float
    ) -> ApplicationError:
        """The attempt's failure as the workflow reads it: typed, permanent or not, in history."""
        permanent = failure.error_type in errors.PERMANENT_ERRORS
        duration_ms = (time.monotonic() - started) * 1000
        self._record_attempt(failure.error_type, duration_ms)
        # The provider's message can quote a recipient: it goes only into the
        # (encrypted) history, the log line keeps the type and status.
        activity.logger.warning(
            "send attempt %d failed: %s (HTTP %s)",
            attempt,
            failure.error_type,
            failure.http_status or "-",
        )
        return ApplicationError(
            failure.message,
            AttemptFailureDetails(
                http_status=failure.http_status,
                provider_error=failure.provider_error,
                started_at=started_at,
                duration_ms=round(duration_ms, 1),
                retry_after_seconds=failure.retry_after_seconds,
                not_accepted=failure.error_type in errors.NOT_ACCEPTED,
            ),
            type=failure.error_type,
            non_retryable=permanent,
            # Transient provider trouble is expected: our own warning above is enough,
            # the SDK need not log a stack trace or count it as a task failure.
            category=ApplicationErrorCategory.UNSPECIFIED
            if permanent
            else ApplicationErrorCategory.BENIGN,
        )

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
    raise ApplicationError(
        text,
        AttemptFailureDetails(
            http_status=None,
            provider_error=None,
            started_at=started_at,
            duration_ms=0.0,
            not_accepted=True,
        ),
        type=error_type,
        non_retryable=permanent,
        category=ApplicationErrorCategory.UNSPECIFIED
        if permanent
        else ApplicationErrorCategory.BENIGN,
    )
