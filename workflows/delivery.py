"""The delivery loop shared by every email workflow: attempts, backoff, status.

Temporal's own activity retries keep only the last failure in history. To put every
attempt on the record, each attempt is its own single-try activity and the workflow owns
the retry schedule: each failed attempt is an `ActivityTaskFailed` event in history and an
`AttemptRecord` in the status.

A 200 from the provider means accepted, not delivered: after the send the workflow waits
(one timer, bounded) for the provider's delivery events, which the webhook route signals;
an outbox send (development) ends when it is written, since nothing will report on it.
A `send_at` in the future is a durable timer before the first attempt; a `cancel` update
stops a send that has not gone out.

Compatibility: everything that adds commands (the `send_at` timer, search-attribute
upserts, the post-send wait) runs only when `workflow.patched(TRACKING_PATCH)` is true, so
executions started by older code replay unchanged; `OUTBOX_DONE_PATCH` likewise removes
the wait from outbox sends. Attempt summaries and current details are not commands.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol

from temporalio import workflow
from temporalio.common import Priority, RetryPolicy
from temporalio.converter import value_to_type
from temporalio.exceptions import ActivityError, ApplicationError, TimeoutError, TimeoutType

with workflow.unsafe.imports_passed_through():
    from activities import errors
    from activities.delivery_contract import SendKind, provider_idempotency_key
    from activities.send import SendActivities
    from activities.transports.outbox import OutboxTransport
    from activities.types import AttemptFailureDetails, EmailMessage, SendAttemptInput
    from workflows.search_attributes import EMAIL_STATUS, PROVIDER_MESSAGE_ID
    from workflows.status import (
        DELIVERY_EVENT_STATUS,
        ENDING_DELIVERY_STATUSES,
        FINAL_DELIVERY_STATUSES,
        SendStatus,
    )
    from workflows.types import (
        CANCEL_UPDATE,
        DELIVERY_EVENT_SIGNAL,
        RESCHEDULE_UPDATE,
        AttemptRecord,
        CancelInput,
        CancelResult,
        DeliveryEventInput,
        DeliveryEventRecord,
        DeliveryPolicy,
        EmailError,
        EmailStatusResult,
        RescheduleInput,
        RescheduleResult,
    )

# One try per activity: the workflow decides about the next one (see module docstring).
SINGLE_ATTEMPT = RetryPolicy(maximum_attempts=1)
# A daily quota resets within 24 h; probe again hourly while the window lasts.
DAILY_QUOTA_RETRY = timedelta(hours=1)
# Failure types (recorded in histories: the strings stay).
SEND_FAILED = "EmailDeliveryFailed"
CANCEL_REJECTED = "EmailNotCancellable"
RESCHEDULE_REJECTED = "EmailNotReschedulable"
TRACKING_PATCH = "delivery-tracking-v1"
# Outbox sends end when written: no provider, so no delivery event can come (no wait timer).
OUTBOX_DONE_PATCH = "outbox-completes-v1"
# Webhooks are delivered at least once: remember this many event ids to drop repeats.
MAX_SEEN_EVENTS = 100
# Nothing has gone out yet in these states (`retrying` only after definite refusals, below).
CANCELLABLE = frozenset({SendStatus.SCHEDULED, SendStatus.QUEUED, SendStatus.RETRYING})
# Refusals that prove the provider did not accept the email. After a timeout, a network
# error or a 5xx the outcome is unknown: it may have gone out, so it can't be cancelled.
DEFINITELY_NOT_SENT = frozenset({errors.RATE_LIMITED, errors.DAILY_QUOTA_EXCEEDED})


def _iso(moment: datetime) -> str:
    return moment.isoformat()


def _duration(delay: timedelta) -> str:
    """`2 s`, `0.5 s`, `5 min`, `1 h`: short enough for the Web UI's one-line summaries."""
    seconds = delay.total_seconds()
    if seconds < 60:
        return f"{seconds:.3g} s"
    if seconds < 3600:
        return f"{seconds / 60:.3g} min"
    return f"{seconds / 3600:.3g} h"


def attempt_summary(attempt: int, previous: AttemptRecord | None) -> str:
    """The Web UI's label of one attempt: `attempt 3 · after HTTP 429, waited 2 s`.

    Built from the error's type and HTTP status only: the provider's message can quote a
    recipient, and summaries are shown to anyone who can open the workflow.
    """
    if previous is None:
        return f"attempt {attempt}"
    if previous.http_status:
        cause = f"HTTP {previous.http_status}"
    elif previous.outcome == "timeout":
        cause = "a timeout"
    else:
        cause = previous.error_type or "an error"
    waited = timedelta(seconds=previous.retry_in_seconds or 0)
    return f"attempt {attempt} · after {cause}, waited {_duration(waited)}"


async def _wait_until(condition: Callable[[], bool], timeout: timedelta) -> bool:
    """True once `condition` holds, False when the (single, durable) timer fires first."""
    try:
        await workflow.wait_condition(condition, timeout=timeout)
    except asyncio.TimeoutError:  # noqa: UP041 (the name TimeoutError is temporalio's here)
        return False
    return True


def task_priority(policy: DeliveryPolicy) -> Priority:
    """The send activity's place on the send queue; the default (the workflow's) if unset."""
    wanted = policy.priority
    if wanted is None:
        return Priority.default
    return Priority(
        priority_key=wanted.priority_key,
        fairness_key=wanted.fairness_key,
        fairness_weight=wanted.fairness_weight,
    )


def _failure_details(cause: ApplicationError) -> AttemptFailureDetails | None:
    """The typed details the send activity attached to its failure (None if it attached none).

    The failure converter decodes details without a type hint (a dict); the payload
    converter's own rules turn it back into the dataclass, defaults included.
    """
    if not cause.details:
        return None
    details: AttemptFailureDetails = value_to_type(AttemptFailureDetails, cause.details[0], [])
    return details


class SendOptions(Protocol):
    """What every email workflow's input carries for the delivery loop."""

    @property
    def policy(self) -> DeliveryPolicy: ...
    @property
    def tenant_id(self) -> str | None: ...
    @property
    def send_at(self) -> str | None: ...


class Delivery:
    """State and retry loop of one email; lives inside a workflow instance."""

    def __init__(
        self,
        email_id: str,
        kind: SendKind,
        options: SendOptions,
        *,
        idempotency_key: str | None = None,
        visible: bool = True,
    ) -> None:
        """`idempotency_key`: another email of the same workflow (an invite's reminder) needs
        its own (default: the workflow's); `visible=False`: its status stays out of the
        workflow's search attributes, which describe the workflow's main email."""
        now = _iso(workflow.now())
        self.policy = options.policy
        self.idempotency_key = idempotency_key
        self.visible = visible
        self.state = EmailStatusResult(
            id=email_id,
            kind=kind,
            status=SendStatus.SCHEDULED if options.send_at else SendStatus.QUEUED,
            created_at=now,
            updated_at=now,
            send_at=options.send_at,
            tenant_id=options.tenant_id,
        )
        self.tracking = False
        self.cancelled = False
        self._sent = False
        self._seen_events: list[str] = []
        self._pending_events: list[DeliveryEventRecord] = []
        self._listening_until: datetime | None = None
        self._metrics = workflow.metric_meter()

    async def begin(self) -> bool:
        """Start of the run: decide once whether this execution uses tracking, then wait
        until `send_at` if there is one. False if cancelled meanwhile (nothing to send)."""
        self.tracking = workflow.patched(TRACKING_PATCH)
        return await self._wait_until_due()

    def _upsert_status(self, *, provider_message_id: str | None = None) -> None:
        # Only real status changes reach visibility: each upsert is a command and an event.
        if not self.tracking or not self.visible:
            return
        updates = [EMAIL_STATUS.value_set(self.state.status)]
        if provider_message_id:
            updates.append(PROVIDER_MESSAGE_ID.value_set(provider_message_id))
        workflow.upsert_search_attributes(updates)

    def _count_send(self, outcome: SendStatus) -> None:
        self._metrics.create_counter("email_sends", "Emails by final send outcome", "{email}").add(
            1, {"outcome": outcome.value, "kind": self.state.kind.value}
        )

    async def _wait_until_due(self) -> bool:
        """Wait on a durable timer until `send_at`; False if cancelled meanwhile.

        A `reschedule` ends the wait and the loop starts a timer for the new time. Without
        one, the commands are those of the single timer of before (no patch needed).
        """
        if self.tracking and self.state.send_at and not self.cancelled:
            while (due := self.state.send_at) is not None:
                delay = datetime.fromisoformat(due) - workflow.now()
                if delay <= timedelta(0):
                    break
                await _wait_until(lambda: self.cancelled or self.state.send_at != due, delay)
                if self.cancelled or self.state.send_at == due:
                    break
            if not self.cancelled:
                self.set_status(SendStatus.QUEUED)
                self._upsert_status()
        return not self.cancelled

    def check_cancellable(self) -> None:
        """Validator of the `cancel` update: reject once an attempt may have gone out."""
        maybe_sent = any(a.error_type not in DEFINITELY_NOT_SENT for a in self.state.attempts)
        if self.state.status not in CANCELLABLE or maybe_sent:
            raise ApplicationError(
                f"email is {self.state.status}; only a send that has not gone out can be cancelled",
                type=CANCEL_REJECTED,
            )

    def check_reschedulable(self, send_at: str) -> None:
        """Validator of the `reschedule` update: a send still waiting, and a time with a zone."""
        try:
            aware = datetime.fromisoformat(send_at).tzinfo is not None
        except ValueError:
            aware = False
        if not aware:
            raise ApplicationError(
                "send_at must be ISO 8601 with a timezone", type=RESCHEDULE_REJECTED
            )
        if self.state.status != SendStatus.SCHEDULED or self.cancelled:
            raise ApplicationError(
                f"email is {self.state.status}; only a scheduled send can be rescheduled",
                type=RESCHEDULE_REJECTED,
            )

    def reschedule(self, send_at: str) -> RescheduleResult:
        self.state.send_at = send_at
        self.state.updated_at = _iso(workflow.now())
        workflow.logger.info("email %s rescheduled", self.state.id)
        return RescheduleResult(status=self.state.status, send_at=send_at)

    def cancel(self) -> CancelResult:
        self.cancelled = True
        self.state.cancelled_at = _iso(workflow.now())
        self.set_status(SendStatus.CANCELLED)
        self._upsert_status()
        self._count_send(SendStatus.CANCELLED)
        workflow.logger.info("email %s cancelled", self.state.id)
        return CancelResult(status=SendStatus.CANCELLED)

    def on_delivery_event(self, event: DeliveryEventInput) -> None:
        """Record a provider event; before the send is recorded it waits in a buffer."""
        if event.event_id in self._seen_events or event.type not in DELIVERY_EVENT_STATUS:
            workflow.logger.info("ignored repeated or unknown event %s", event.type)
            return
        self._seen_events.append(event.event_id)
        del self._seen_events[:-MAX_SEEN_EVENTS]
        record = DeliveryEventRecord(
            event_id=event.event_id,
            type=event.type,
            received_at=_iso(workflow.now()),
            occurred_at=event.occurred_at,
            detail=event.detail,
        )
        self.state.delivery_events.append(record)
        self._metrics.create_counter(
            "email_delivery_events", "Provider delivery events by type", "{event}"
        ).add(1, {"type": event.type})
        if self._sent:
            if self._apply_event(record):
                self._upsert_status()
        else:
            # A webhook can overtake the activity's completion: apply it after the send.
            self._pending_events.append(record)

    def _apply_event(self, record: DeliveryEventRecord) -> bool:
        status = DELIVERY_EVENT_STATUS[record.type]
        if self.state.status in FINAL_DELIVERY_STATUSES and status not in FINAL_DELIVERY_STATUSES:
            return False  # a late `delivery_delayed` does not undo `delivered`
        if status == self.state.status:
            return False
        self.set_status(status)
        return True

    async def track_delivery(self, *, listen: bool = True) -> None:
        """After the send: apply early events, then wait (one timer) for a final one
        unless `listen` is False (an outbox send: nothing will report on it)."""
        self._sent = True
        for record in self._pending_events:
            self._apply_event(record)
        self._pending_events.clear()
        self._upsert_status(provider_message_id=self.state.provider_message_id)
        # `delivered` is not an ending: a complaint can still follow it.
        if not listen or self.state.status in ENDING_DELIVERY_STATUSES:
            return
        wait = timedelta(seconds=self.policy.delivery_wait_seconds)
        self._listening_until = workflow.now() + wait
        self._show_details()
        final = await _wait_until(lambda: self.state.status in ENDING_DELIVERY_STATUSES, wait)
        self._listening_until = None
        self._show_details()
        if not final:
            workflow.logger.info("no final delivery event for %s; status stays", self.state.id)

    def set_status(self, status: SendStatus) -> None:
        self.state.status = status
        self.state.updated_at = _iso(workflow.now())
        self._show_details()

    def _show_details(self) -> None:
        """The workflow's current details in the Web UI (not a command: replay-safe).

        Kind, tenant, status and the last error's type and HTTP status; never its message
        (it can quote a recipient), a recipient, a token or a subject.
        """
        state = self.state
        details = (
            f"**{state.kind}** · tenant `{state.tenant_id or '-'}` · **{state.status}** "
            f"after {len(state.attempts)} attempt(s)"
        )
        last = state.attempts[-1] if state.attempts else None
        if last and last.error_type:
            details += f"; last error `{last.error_type}`"
            if last.http_status:
                details += f" (HTTP {last.http_status})"
        if state.transport:
            details += f" · transport `{state.transport}`"
        if self._listening_until is not None:
            until = self._listening_until.strftime("%Y-%m-%d %H:%M UTC")
            details += f" · listening for delivery events until {until}"
        workflow.set_current_details(details)

    async def send(self, message: EmailMessage) -> EmailStatusResult:
        """Send until accepted, a permanent error, or the end of the send window."""
        policy = self.policy
        idempotency_key = self.idempotency_key or provider_idempotency_key(
            workflow.info().workflow_id
        )
        deadline = workflow.now() + timedelta(seconds=policy.window_seconds)
        backoff = timedelta(seconds=policy.initial_backoff_seconds)
        attempt = 0
        while True:
            if self.cancelled:
                return self.state
            attempt += 1
            self.set_status(SendStatus.SENDING)
            scheduled = workflow.now()
            try:
                result = await workflow.execute_activity_method(
                    SendActivities.send_email,
                    SendAttemptInput(
                        message=message, idempotency_key=idempotency_key, attempt=attempt
                    ),
                    task_queue=policy.send_task_queue,
                    start_to_close_timeout=timedelta(seconds=policy.attempt_timeout_seconds),
                    # Never send after the window: past it Resend's 24 h idempotency
                    # window could no longer deduplicate a late attempt.
                    schedule_to_close_timeout=deadline - scheduled,
                    retry_policy=SINGLE_ATTEMPT,
                    summary=attempt_summary(
                        attempt, self.state.attempts[-1] if self.state.attempts else None
                    ),
                    priority=task_priority(policy),
                )
            except ActivityError as err:
                record, permanent, retry_after = self.failed_attempt(attempt, scheduled, err)
                self.state.attempts.append(record)
                error = EmailError(record.error_type or "", record.error_message or "")
                self.state.last_error = error
                delay = retry_after if retry_after is not None else backoff
                if permanent or workflow.now() + delay >= deadline:
                    if not permanent:
                        error.message += " (send window exhausted)"
                    self.set_status(SendStatus.FAILED)
                    self._upsert_status()
                    self._count_send(SendStatus.FAILED)
                    workflow.logger.warning("email %s failed: %s", self.state.id, record.error_type)
                    raise ApplicationError(
                        f"email not delivered: {error.message}",
                        self.state,
                        type=SEND_FAILED,
                        non_retryable=True,
                    ) from None
                record.retry_in_seconds = delay.total_seconds()
                self.set_status(SendStatus.RETRYING)
                if self.tracking:
                    # Same timer as `sleep`, but a `cancel` update ends the wait early.
                    await _wait_until(lambda: self.cancelled, delay)
                else:
                    await workflow.sleep(delay)
                backoff = min(backoff * 2, timedelta(seconds=policy.max_backoff_seconds))
                continue
            now = _iso(workflow.now())
            self.state.attempts.append(
                AttemptRecord(
                    attempt=attempt,
                    scheduled_at=_iso(scheduled),
                    started_at=result.started_at,
                    finished_at=now,
                    outcome="accepted",
                    http_status=result.http_status,
                    provider_message_id=result.provider_message_id,
                )
            )
            self.state.provider_message_id = result.provider_message_id
            self.state.transport = result.transport
            self.state.sent_at = now
            self.state.last_error = None
            self.set_status(SendStatus.SENT)
            self._count_send(SendStatus.SENT)
            workflow.logger.info("email %s accepted after %d attempt(s)", self.state.id, attempt)
            return self.state

    async def send_and_track(self, message: EmailMessage) -> EmailStatusResult:
        """Send, then (tracked executions) wait for the provider's delivery outcome."""
        await self.send(message)
        if self.tracking and self.state.status == SendStatus.SENT:
            # `patched` only on outbox sends: the executions it changes are the only ones
            # that get its marker (older outbox sends replay with their wait).
            outbox = self.state.transport == OutboxTransport.name
            await self.track_delivery(listen=not (outbox and workflow.patched(OUTBOX_DONE_PATCH)))
        return self.state

    @staticmethod
    def failed_attempt(
        attempt: int, scheduled: datetime, err: ActivityError
    ) -> tuple[AttemptRecord, bool, timedelta | None]:
        """The record of a failed attempt, whether it is permanent, and the provider's
        retry-after (shared by the single and the batch send loops)."""
        record = AttemptRecord(
            attempt=attempt,
            scheduled_at=_iso(scheduled),
            finished_at=_iso(workflow.now()),
            outcome="transient_error",
        )
        cause = err.cause
        if isinstance(cause, TimeoutError):
            record.outcome = "timeout"
            record.error_type = (
                f"Timeout{cause.type.name.title().replace('_', '') if cause.type else ''}"
            )
            record.error_message = "attempt timed out; the retry reuses the idempotency key"
            # Past schedule-to-close the send window is over.
            return record, cause.type == TimeoutType.SCHEDULE_TO_CLOSE, None
        if not isinstance(cause, ApplicationError):
            record.error_type = type(cause).__name__ if cause else "ActivityError"
            record.error_message = str(cause or err)
            return record, False, None
        details = _failure_details(cause)
        record.error_type = cause.type or "ApplicationError"
        record.error_message = cause.message
        record.http_status = details.http_status if details else None
        record.started_at = details.started_at if details else None
        permanent = cause.non_retryable or record.error_type in errors.PERMANENT_ERRORS
        record.outcome = "permanent_error" if permanent else "transient_error"
        retry_after: timedelta | None = None
        if details is not None and details.retry_after_seconds is not None:
            retry_after = timedelta(seconds=max(details.retry_after_seconds, 1.0))
        elif record.error_type == errors.DAILY_QUOTA_EXCEEDED:
            retry_after = DAILY_QUOTA_RETRY
        return record, permanent, retry_after


class EmailHandlers:
    """Mixin of the handlers every email workflow shares (status query, delivery-event
    signal, cancel update); the workflow class sets `_delivery` in its `__init__`."""

    _delivery: Delivery

    @workflow.query(name="status")
    def status(self) -> EmailStatusResult:
        """Where this email stands, with every attempt so far."""
        return self._delivery.state

    @workflow.signal(name=DELIVERY_EVENT_SIGNAL)
    def delivery_event(self, event: DeliveryEventInput) -> None:
        """A provider webhook event (delivered, bounced, ...), deduplicated by its id."""
        self._delivery.on_delivery_event(event)

    @workflow.update(name=CANCEL_UPDATE)
    def cancel(self, data: CancelInput) -> CancelResult:
        """Cancel a send that has not gone out (rejected once an attempt may have)."""
        return self._delivery.cancel()

    @cancel.validator
    def validate_cancel(self, data: CancelInput) -> None:
        self._delivery.check_cancellable()

    @workflow.update(name=RESCHEDULE_UPDATE)
    def reschedule(self, data: RescheduleInput) -> RescheduleResult:
        """Move a scheduled send to another time (rejected once it is due or cancelled)."""
        return self._delivery.reschedule(data.send_at)

    @reschedule.validator
    def validate_reschedule(self, data: RescheduleInput) -> None:
        self._delivery.check_reschedulable(data.send_at)
