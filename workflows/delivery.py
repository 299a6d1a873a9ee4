"""The delivery loop shared by every email workflow: attempts, backoff, status.

Temporal's own activity retries keep only the last failure in history. To put every
attempt on the record, each attempt is its own single-try activity and the workflow owns
the retry schedule: each failed attempt is an `ActivityTaskFailed` event in history and an
`AttemptRecord` in the status.

A 200 from the provider means accepted, not delivered: after the send the workflow waits
(one timer, bounded) for the provider's delivery events, which the webhook route signals;
an outbox send (development) ends when it is written, since nothing will report on it.
A `send_at` in the future is a durable timer before the first attempt; a `cancel` update
(or, when no worker answers it, the durable `cancel_request` signal) stops a send that has
not gone out.

Bounded history (executions that took `BOUNDED_PATCH`), whatever the provider does:
- The message is pinned once (workflow input, or the render's recorded result) and given
  to the first attempt only: a later attempt's send activity reads it with the
  `pinned_message` query and checks its digest (so a history holds at most two copies,
  whatever the number of attempts, and a send that goes out at once needs no query to the
  workflow's worker, which a backlog of workflow tasks can make slow).
- A run continues as new before its history nears Temporal's limits (`RUN_EVENT_BUDGET`,
  `RUN_SIZE_BUDGET`, or the server's suggestion), carrying the pinned message, the attempt
  count, the recent attempts and delivery events, the send window and the retry backoff.
  The workflow id, hence the provider's idempotency key, stays the same.
- No attempt after `not_after`: the send window (23 h) after the email became due (its
  accept time, or `send_at`), hence at most 23 h after the first attempt, which cannot be
  earlier. Both come from the workflow input, which a reset keeps: a reset discards the
  events after its point (the first attempt among them, perhaps), so a deadline counted
  from a remembered first attempt could restart after the provider forgot the key. The
  send activity refuses to call the provider past `not_after` itself, too.
- Honest ends: `failed` only when the provider provably did not take the email;
  `undetermined` when an attempt's outcome is unknown (timeout, network error, 5xx, 409),
  or when a reset may have discarded attempts.

Compatibility: commands added by delivery tracking (the `send_at` timer, search-attribute
upserts, the post-send wait) run only when `workflow.patched(TRACKING_PATCH)` is true,
everything above only when `workflow.patched(BOUNDED_PATCH)` is, and `OUTBOX_DONE_PATCH`
likewise removes the wait from outbox sends, so executions started by older code replay
unchanged. Attempt summaries and current details are not commands.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import NoReturn, Protocol, TypeVar

from temporalio import workflow
from temporalio.common import Priority, RetryPolicy
from temporalio.converter import value_to_type
from temporalio.exceptions import ActivityError, ApplicationError, TimeoutError, TimeoutType

with workflow.unsafe.imports_passed_through():
    from activities import errors
    from activities.delivery_contract import (
        PINNED_MESSAGE_QUERY,
        SendKind,
        message_sha256,
        provider_idempotency_key,
    )
    from activities.send import SendActivities
    from activities.transports.outbox import OutboxTransport
    from activities.types import (
        AttemptFailureDetails,
        EmailMessage,
        SendAttemptInput,
        SendAttemptResult,
    )
    from workflows.search_attributes import EMAIL_STATUS, PROVIDER_MESSAGE_ID
    from workflows.status import (
        DELIVERY_EVENT_STATUS,
        ENDING_DELIVERY_STATUSES,
        FINAL_DELIVERY_STATUSES,
        SendStatus,
    )
    from workflows.types import (
        CANCEL_REQUEST_SIGNAL,
        CANCEL_UPDATE,
        DELIVERY_EVENT_SIGNAL,
        RESCHEDULE_UPDATE,
        AttemptRecord,
        CancelInput,
        CancelResult,
        ContinuedDelivery,
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
SEND_UNDETERMINED = "EmailDeliveryUndetermined"
CANCEL_REJECTED = "EmailNotCancellable"
RESCHEDULE_REJECTED = "EmailNotReschedulable"
TRACKING_PATCH = "delivery-tracking-v1"
BOUNDED_PATCH = "bounded-history-v1"
# Outbox sends end when written: no provider, so no delivery event can come (no wait timer).
OUTBOX_DONE_PATCH = "outbox-completes-v1"
# Webhooks are delivered at least once: remember this many event ids to drop repeats.
MAX_SEEN_EVENTS = 100
# Nothing has gone out yet in these states (`retrying` only after definite refusals, below).
CANCELLABLE = frozenset({SendStatus.SCHEDULED, SendStatus.QUEUED, SendStatus.RETRYING})
# A run continues as new past either budget (or when the server suggests it: 4 Ki events
# or 4 MiB by default), far below Temporal's limits (51,200 events, 50 MB) and within our
# design limits (10,000 events, 10 MB per run) even with the largest message in the input.
RUN_EVENT_BUDGET = 4_000
RUN_SIZE_BUDGET = 4 * 1024 * 1024
MIN_RUN_EVENTS = 100
# Kept in the status (and carried from run to run): the first few and the latest; the
# counts cover every one.
KEEP_FIRST_ATTEMPTS = 3
KEEP_LAST_ATTEMPTS = 20
KEEP_FIRST_EVENTS = 5
KEEP_LAST_EVENTS = 20
UNDETERMINED_NOTE = (
    "The provider may have accepted this email: resubmitting it under a new "
    "Idempotency-Key may send it twice."
)

T = TypeVar("T")


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


def _history_full() -> bool:
    """Whether this run's history has reached its budget (time to continue as new)."""
    info = workflow.info()
    if info.get_current_history_length() < MIN_RUN_EVENTS:
        return False  # never continue as new from a run that has done nothing yet
    return (
        info.is_continue_as_new_suggested()
        or info.get_current_history_length() >= RUN_EVENT_BUDGET
        or info.get_current_history_size() >= RUN_SIZE_BUDGET
    )


def _is_reset_run() -> bool:
    """A reset run replays a copy of an earlier run's history up to the reset point only:
    whatever that run did after it (attempts included) is unknown here.

    The `Replayer` gives every history the run id of its start event, so replaying a reset
    run sees no reset: this may choose values (a status, a message), never commands."""
    info = workflow.info()
    return info.run_id != info.original_execution_run_id


def unsent_ending(error: EmailError, may_have_accepted: bool, what: str) -> tuple[SendStatus, str]:
    """How a `what` ("send", "batch") the provider did not take ends, and its failure type:
    `failed` if the provider provably did not take it, else `undetermined` (an attempt's
    outcome is unknown, or a reset may have discarded attempts); `error` says which."""
    reset = _is_reset_run()
    if not may_have_accepted and not reset:
        return SendStatus.FAILED, SEND_FAILED
    error.message = f"{error.message}. {UNDETERMINED_NOTE}"
    if reset:
        error.message += f" This {what}'s workflow was reset: an earlier run may have sent it."
    return SendStatus.UNDETERMINED, SEND_UNDETERMINED


def _keep(items: list[T], item: T, first: int, last: int) -> int:
    """Append `item`, keeping the first `first` and the last `last`; how many were dropped."""
    items.append(item)
    if len(items) <= first + last:
        return 0
    del items[first]
    return 1


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
    """What a send's options carry for the delivery loop (a workflow input, say)."""

    @property
    def policy(self) -> DeliveryPolicy: ...
    @property
    def tenant_id(self) -> str | None: ...
    @property
    def send_at(self) -> str | None: ...


# How a workflow continues as new with a send's carry and its accept time: it never returns
# (`workflow.continue_as_new` raises; a workflow with several sends parks this one until
# all of them are at such a point, then continues as new with every carry).
ContinueAsNew = Callable[[str, ContinuedDelivery], Awaitable[NoReturn]]


class Delivery:
    """State and retry loop of one email; lives inside a workflow instance.

    `message`: the email when the workflow input holds it (`SendEmail`); otherwise it is
    pinned when the send starts (`run`'s `render`, or `send`) and a continued run gets it
    from the carry. `idempotency_key`: another email of the same workflow (an invite's
    reminder) needs its own (default: the workflow's); `visible=False`: its status stays out
    of the workflow's search attributes, which describe the workflow's main email.
    `accepted_at` and `continued` come from the workflow input; `continue_as_new` is how
    the workflow continues as new with a carry (without it, this send never does).
    """

    def __init__(
        self,
        email_id: str,
        kind: SendKind,
        options: SendOptions,
        message: EmailMessage | None = None,
        *,
        idempotency_key: str | None = None,
        visible: bool = True,
        accepted_at: str | None = None,
        continued: ContinuedDelivery | None = None,
        continue_as_new: ContinueAsNew | None = None,
    ) -> None:
        self.policy = options.policy
        self.idempotency_key = idempotency_key
        self.visible = visible
        self._continue_with = continue_as_new
        carried = continued
        if carried is None:
            now = _iso(workflow.now())
            self.state = EmailStatusResult(
                id=email_id,
                kind=kind,
                status=SendStatus.SCHEDULED if options.send_at else SendStatus.QUEUED,
                created_at=now,
                updated_at=now,
                send_at=options.send_at,
                tenant_id=options.tenant_id,
            )
        else:
            self.state = carried.state
            self.state.runs += 1
        self._message_in_input = message is not None
        self.message = carried.message if message is None and carried else message
        # The accept time survives resets and is carried by continue-as-new; executions
        # accepted before it was recorded fall back on the first run's start time.
        self._accepted_at = accepted_at or _iso(workflow.info().workflow_start_time)
        self.tracking = False
        self._bounded: bool | None = None
        self.cancelled = False
        self._sent = carried.sent if carried else False
        self._backoff = timedelta(
            seconds=carried.backoff_seconds
            if carried and carried.backoff_seconds
            else self.policy.initial_backoff_seconds
        )
        self._tracking_until = carried.tracking_until if carried else None
        self._seen_events: list[str] = list(carried.seen_event_ids) if carried else []
        self._pending_events: list[DeliveryEventRecord] = (
            list(carried.pending_events) if carried else []
        )
        self._listening_until: datetime | None = None
        self._metrics = workflow.metric_meter()

    @property
    def bounded(self) -> bool:
        """Whether this execution has bounded history and honest outcomes (new sends).

        Decided once, in the first workflow task (`begin`, or a handler that runs before it),
        so that an execution started by older code never switches midway."""
        if self._bounded is None:
            self._bounded = workflow.patched(BOUNDED_PATCH)
        return self._bounded

    async def run(
        self, render: Callable[[], Awaitable[EmailMessage]] | None = None
    ) -> EmailStatusResult:
        """The send's whole life: wait until due, pin the message, send, track delivery."""
        if not await self.begin():
            return self.state
        if self._sent:
            # A run continued after the send: only the wait for delivery events is left.
            await self.track_delivery()
            return self.state
        if self.message is None:
            if render is None:
                raise ValueError("a send without a message needs a render step")
            self.message = await render()
        return await self.send_and_track(self.message)

    async def begin(self) -> bool:
        """Start of the run: decide once whether this execution uses tracking (and bounded
        history), then wait until `send_at` if there is one. False if cancelled meanwhile."""
        self.tracking = workflow.patched(TRACKING_PATCH)
        bounded = self.bounded  # decided here at the latest: always in the first task
        if self.tracking and bounded:
            return await self._wait_until_due_bounded()
        return await self._wait_until_due()

    def pinned_message(self, digest: str | None = None) -> EmailMessage | None:
        """The message every attempt sends, if it is the one of `digest` (the activity asks
        by digest: a workflow may send several emails)."""
        if self.message is None or (digest and message_sha256(self.message) != digest):
            return None
        return self.message

    def _upsert_status(self, *, provider_message_id: str | None = None) -> None:
        # Only real status changes reach visibility: each upsert is a command and an event.
        # Before `begin` (a handler in the first task), only new executions upsert.
        if not self.visible or not (self.tracking or self.bounded):
            return
        updates = [EMAIL_STATUS.value_set(self.state.status)]
        if provider_message_id:
            updates.append(PROVIDER_MESSAGE_ID.value_set(provider_message_id))
        elif self.bounded:
            # `sending` is never written; nor is a status visibility already holds.
            current = workflow.info().typed_search_attributes.get(EMAIL_STATUS)
            if self.state.status in (SendStatus.SENDING, current):
                return
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

    async def _wait_until_due_bounded(self) -> bool:
        """As `_wait_until_due` (a `reschedule` restarts the wait), continuing as new if
        signals fill the history meanwhile."""
        if self.state.status != SendStatus.SCHEDULED:
            return not self.cancelled  # a continued run past its `send_at`
        while not self.cancelled and (due := self.state.send_at) is not None:
            if datetime.fromisoformat(due) <= workflow.now():
                break
            await _wait_until(
                lambda: self.cancelled or self.state.send_at != due or self._history_full(),
                datetime.fromisoformat(due) - workflow.now(),
            )
            if self.cancelled or self.state.send_at != due:
                continue
            if workflow.now() < datetime.fromisoformat(due):
                await self._continue_as_new()
        if not self.cancelled:
            self.set_status(SendStatus.QUEUED)
            self._upsert_status()
        return not self.cancelled

    def _cancellable(self) -> bool:
        return self.state.status in CANCELLABLE and not self.state.provider_may_have_accepted

    def check_cancellable(self) -> None:
        """Validator of the `cancel` update: reject once an attempt may have gone out."""
        if not self._cancellable():
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

    def on_cancel_request(self) -> None:
        """The durable cancel (signal): applied if the email has not gone out, else noted."""
        self.state.cancel_requested_at = _iso(workflow.now())
        if self.cancelled:
            return
        if self._cancellable():
            self.cancel()
        else:
            workflow.logger.info(
                "cancel request for %s not applied: it is %s", self.state.id, self.state.status
            )

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
        # A webhook flood must not grow the state (nor, through continue-as-new, history).
        self.state.delivery_event_count += 1
        self.state.delivery_events_omitted += _keep(
            self.state.delivery_events, record, KEEP_FIRST_EVENTS, KEEP_LAST_EVENTS
        )
        self._metrics.create_counter(
            "email_delivery_events", "Provider delivery events by type", "{event}"
        ).add(1, {"type": event.type})
        if self._sent:
            if self._apply_event(record):
                self._upsert_status()
        else:
            # A webhook can overtake the activity's completion: apply it after the send.
            _keep(self._pending_events, record, KEEP_FIRST_EVENTS, KEEP_LAST_EVENTS)

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
        if self._tracking_until is None:
            self._sent = True
            for record in self._pending_events:
                self._apply_event(record)
            self._pending_events.clear()
            self._upsert_status(provider_message_id=self.state.provider_message_id)
        # `delivered` is not an ending: a complaint can still follow it.
        if not listen or self.state.status in ENDING_DELIVERY_STATUSES:
            return
        wait = timedelta(seconds=self.policy.delivery_wait_seconds)
        if not self.bounded:
            self._listening_until = workflow.now() + wait
            self._show_details()
            final = await _wait_until(lambda: self.state.status in ENDING_DELIVERY_STATUSES, wait)
        else:
            final = await self._wait_for_ending(wait)
        self._listening_until = None
        self._show_details()
        if not final:
            workflow.logger.info("no final delivery event for %s; status stays", self.state.id)

    async def _wait_for_ending(self, wait: timedelta) -> bool:
        """The delivery wait of bounded executions: it continues as new (with the time left)
        if a stream of events fills this run's history."""
        if self._tracking_until is None:
            self._tracking_until = _iso(workflow.now() + wait)
        until = datetime.fromisoformat(self._tracking_until)
        self._listening_until = until
        self._show_details()
        while self.state.status not in ENDING_DELIVERY_STATUSES and workflow.now() < until:
            await _wait_until(
                lambda: self.state.status in ENDING_DELIVERY_STATUSES or self._history_full(),
                until - workflow.now(),
            )
            if self.state.status not in ENDING_DELIVERY_STATUSES and workflow.now() < until:
                await self._continue_as_new()
        return self.state.status in ENDING_DELIVERY_STATUSES

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
            f"after {state.attempt_count} attempt(s)"
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

    def _add_attempt(self, record: AttemptRecord) -> None:
        self.state.attempt_count += 1
        if self.state.first_attempt_at is None:
            self.state.first_attempt_at = record.scheduled_at
        self.state.attempts_omitted += _keep(
            self.state.attempts, record, KEEP_FIRST_ATTEMPTS, KEEP_LAST_ATTEMPTS
        )
        if record.outcome != "accepted" and record.error_type not in errors.NOT_ACCEPTED:
            self.state.provider_may_have_accepted = True

    async def send(self, message: EmailMessage) -> EmailStatusResult:
        """Send until accepted, a permanent error, or the end of the send window."""
        if self.message is None:
            self.message = message  # pinned: every attempt sends these bytes
        if self.tracking and self.bounded:
            await self._send_bounded(message)
            return self.state
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
                self._add_attempt(record)
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
            self._accepted(attempt, scheduled, result)
            return self.state

    async def _send_bounded(self, message: EmailMessage) -> None:
        """The send loop of bounded executions (see the module docstring)."""
        policy = self.policy
        idempotency_key = self.idempotency_key or provider_idempotency_key(
            workflow.info().workflow_id
        )
        digest = message_sha256(message)
        while not self.cancelled:
            if self._history_full():
                await self._continue_as_new()
            not_after = self._send_window_end()
            scheduled = workflow.now()
            if scheduled >= not_after:
                self._end_unsent(
                    EmailError(
                        errors.SEND_WINDOW_CLOSED,
                        "the send window ended before another attempt could be made",
                    )
                )
            attempt = self.state.attempt_count + 1
            self.set_status(SendStatus.SENDING)
            try:
                result = await workflow.execute_activity_method(
                    SendActivities.send_email,
                    # The message in the first attempt only (most sends need no other, and
                    # it needs no query to the workflow's worker); later attempts read the
                    # pinned one (`pinned_message`), so a retry series does not record it
                    # once per attempt.
                    SendAttemptInput(
                        message=message if self.state.attempt_count == 0 else None,
                        idempotency_key=idempotency_key,
                        attempt=attempt,
                        message_sha256=digest,
                        not_after=_iso(not_after),
                    ),
                    task_queue=policy.send_task_queue,
                    start_to_close_timeout=timedelta(seconds=policy.attempt_timeout_seconds),
                    schedule_to_close_timeout=not_after - scheduled,
                    retry_policy=SINGLE_ATTEMPT,
                    summary=attempt_summary(
                        attempt, self.state.attempts[-1] if self.state.attempts else None
                    ),
                    priority=task_priority(policy),
                )
            except ActivityError as err:
                record, permanent, retry_after = self.failed_attempt(attempt, scheduled, err)
                self._add_attempt(record)
                error = EmailError(record.error_type or "", record.error_message or "")
                self.state.last_error = error
                delay = retry_after if retry_after is not None else self._backoff
                if permanent:
                    self._end_unsent(error)
                if workflow.now() + delay >= not_after:
                    error.message += " (send window exhausted)"
                    self._end_unsent(error)
                record.retry_in_seconds = delay.total_seconds()
                self.set_status(SendStatus.RETRYING)
                self._upsert_status()
                await _wait_until(lambda: self.cancelled, delay)
                self._backoff = min(
                    self._backoff * 2, timedelta(seconds=policy.max_backoff_seconds)
                )
                continue
            self._accepted(attempt, scheduled, result)
            return

    def _send_window_end(self) -> datetime:
        """`not_after`: the window after the email became due (see the module docstring),
        fixed before the first attempt and carried from run to run."""
        if self.state.not_after is None:
            due = datetime.fromisoformat(self._accepted_at)
            if self.state.send_at:
                due = max(due, datetime.fromisoformat(self.state.send_at))
            self.state.not_after = _iso(due + timedelta(seconds=self.policy.window_seconds))
        return datetime.fromisoformat(self.state.not_after)

    def _end_unsent(self, error: EmailError) -> NoReturn:
        """End a send that was not accepted: `failed` if the provider provably did not take
        it, `undetermined` if an attempt's outcome is unknown."""
        status, failure_type = unsent_ending(error, self.state.provider_may_have_accepted, "send")
        self.state.last_error = error
        self.set_status(status)
        self._upsert_status()
        self._count_send(status)
        workflow.logger.warning("email %s %s: %s", self.state.id, status, error.type)
        raise ApplicationError(
            f"email not delivered ({status}): {error.message}",
            self.state,
            type=failure_type,
            non_retryable=True,
        )

    def _history_full(self) -> bool:
        """Time to continue as new: the run's history is full and the workflow can."""
        return self._continue_with is not None and _history_full()

    def history_full(self) -> bool:
        """`_history_full` for the workflow, once this send has decided it is bounded (it
        never decides it here: `workflow.patched` belongs in the first task)."""
        return self._bounded is True and self._history_full()

    async def _continue_as_new(self) -> NoReturn:
        """Continue as new with everything the send needs (see `ContinuedDelivery`)."""
        # The handlers are synchronous today; one that awaits must not be cut off.
        await workflow.wait_condition(workflow.all_handlers_finished)
        info = workflow.info()
        workflow.logger.info(
            "email %s continues as new after %d events (%d bytes), %d attempts",
            self.state.id,
            info.get_current_history_length(),
            info.get_current_history_size(),
            self.state.attempt_count,
        )
        self._metrics.create_counter(
            "email_continued_as_new", "Runs that continued as new to bound history", "{run}"
        ).add(1, {"kind": self.state.kind.value})
        assert self._continue_with is not None  # see `_history_full`
        await self._continue_with(self._accepted_at, self.carry())

    def carry(self) -> ContinuedDelivery:
        """What this send carries into the workflow's next run (see `ContinuedDelivery`)."""
        return ContinuedDelivery(
            state=self.state,
            message=None if self._message_in_input else self.message,
            backoff_seconds=self._backoff.total_seconds(),
            sent=self._sent,
            tracking_until=self._tracking_until,
            seen_event_ids=list(self._seen_events),
            pending_events=list(self._pending_events),
        )

    async def send_and_track(self, message: EmailMessage) -> EmailStatusResult:
        """Send, then (tracked executions) wait for the provider's delivery outcome."""
        await self.send(message)
        if self.tracking and self.state.status == SendStatus.SENT:
            # `patched` only on outbox sends: the executions it changes are the only ones
            # that get its marker (older outbox sends replay with their wait).
            outbox = self.state.transport == OutboxTransport.name
            await self.track_delivery(listen=not (outbox and workflow.patched(OUTBOX_DONE_PATCH)))
        return self.state

    def _accepted(self, attempt: int, scheduled: datetime, result: SendAttemptResult) -> None:
        now = _iso(workflow.now())
        self._add_attempt(
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
            window_over = cause.type == TimeoutType.SCHEDULE_TO_CLOSE
            if window_over and not err.started_event_id:
                # No worker started it before the window ended: the provider was not called.
                record.outcome = "not_started"
                record.error_type = errors.SEND_WINDOW_CLOSED
                record.error_message = "no worker started the attempt before the send window ended"
            # Past schedule-to-close the send window is over.
            return record, window_over, None
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


def pinned_of(deliveries: list[Delivery], digest: str | None) -> EmailMessage:
    """The `pinned_message` query's answer: the message of `digest` among the workflow's."""
    for delivery in deliveries:
        message = delivery.pinned_message(digest)
        if message is not None:
            return message
    raise ApplicationError("no such message is pinned here", type="NoPinnedMessage")


class EmailHandlers:
    """Mixin of the handlers every email workflow shares (status and pinned-message queries,
    delivery-event and cancel-request signals, cancel update); the workflow class sets
    `_delivery` in its `__init__`."""

    _delivery: Delivery

    @workflow.query(name="status")
    def status(self) -> EmailStatusResult:
        """Where this email stands, with every attempt so far."""
        return self._delivery.state

    @workflow.query(name=PINNED_MESSAGE_QUERY)
    def pinned_message(self, digest: str | None = None) -> EmailMessage:
        """The message this send pinned: the send activity reads it here, not in its input."""
        return pinned_of([self._delivery], digest)

    @workflow.signal(name=DELIVERY_EVENT_SIGNAL)
    def delivery_event(self, event: DeliveryEventInput) -> None:
        """A provider webhook event (delivered, bounced, ...), deduplicated by its id."""
        self._delivery.on_delivery_event(event)

    @workflow.signal(name=CANCEL_REQUEST_SIGNAL)
    def cancel_request(self, data: CancelInput) -> None:
        """A cancel no worker could answer at once: applied when the workflow next runs, if
        the email has not gone out by then (else only noted in the status)."""
        self._delivery.on_cancel_request()

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
