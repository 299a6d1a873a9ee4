"""The one delivery loop: a provider call carrying 1 to 100 messages, from due to an ending.

Temporal's own activity retries keep only the last failure in history. To put every attempt
on the record, each attempt is its own single-try activity and the loop owns the retry
schedule: each failed attempt is an `ActivityTaskFailed` event in history and an
`AttemptRecord` in the status. Written once here, for `SendEmail`, an invite's emails and
`SendBatch` alike (each drives a subclass: `Delivery`, `BatchCall`):

- The due wait: a durable timer until `send_at`; a reschedule restarts it, a cancel ends it.
- The send window (`not_after`): the window after the call became due (its accept time, or
  `send_at`). Both come from the workflow input, which a reset keeps, so a reset run cannot
  call the provider after the provider may have forgotten the idempotency key (one key on
  every attempt, in every run). The activity refuses past `not_after` itself, too.
- Attempts with exponential backoff, or the provider's Retry-After, until accepted, a final
  failure or the end of the window; honest endings (`endings`).
- Bounded history: a run continues as new before its history nears Temporal's limits,
  while waiting to be due, between attempts, or while waiting for delivery events,
  carrying where the loop stands. A run that comes from a reset knows nothing of what the
  discarded runs did: it starts as if an attempt's outcome were unknown.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Generic, NoReturn, Protocol, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities import errors
    from activities.suppressions import (
        CHECK_RETRY,
        CHECK_TIMEOUT,
        CheckSuppressedInput,
        SuppressionActivities,
    )
    from workflows.delivery.attempts import FailedAttempt, failed_attempt
    from workflows.delivery.changes import SUPPRESSION_CHECK, changed
    from workflows.delivery.endings import ending_failure, is_reset_run, unsent_ending
    from workflows.delivery.history import (
        KEEP_FIRST_ATTEMPTS,
        KEEP_LAST_ATTEMPTS,
        history_full,
        iso,
        keep,
        wait_until,
    )
    from workflows.delivery.labels import attempt_summary
    from workflows.policy import DeliveryPolicy, task_priority
    from workflows.status import SendStatus
    from workflows.types import AttemptRecord, EmailError

SUPPRESSED = "RecipientSuppressed"
# One try per activity: the loop decides about the next one (see the module docstring).
SINGLE_ATTEMPT = RetryPolicy(maximum_attempts=1)

R = TypeVar("R")


def attempt_options(policy: DeliveryPolicy, not_after: datetime, summary: str) -> dict[str, Any]:
    """How an attempt's activity runs: once (the loop retries), on the send queue with the
    policy's priority, and never after the window: past it the provider's 24 h idempotency
    window could no longer deduplicate a late attempt."""
    return {
        "task_queue": policy.send_task_queue,
        "start_to_close_timeout": timedelta(seconds=policy.attempt_timeout_seconds),
        "schedule_to_close_timeout": not_after - workflow.now(),
        "retry_policy": SINGLE_ATTEMPT,
        "summary": summary,
        "priority": task_priority(policy),
    }


class CallState(Protocol):
    """What the loop reads and writes of a status (`EmailStatusResult`, `BatchStatusResult`)."""

    status: SendStatus
    attempts: list[AttemptRecord]
    attempt_count: int
    attempts_omitted: int
    not_after: str | None
    provider_may_have_accepted: bool
    last_error: EmailError | None


class ProviderCall(Generic[R]):
    """The loop of one provider call; a subclass says how to attempt it and what follows."""

    what = "send"
    # Whether a failed attempt's record quotes the provider's own words, which can name a
    # recipient: the sender's own, for one sender's send; never for a call shared by tenants.
    quotes_provider = True

    def __init__(
        self,
        state: CallState,
        policy: DeliveryPolicy,
        *,
        accepted_at: str,
        backoff_seconds: float | None,
        can_continue: bool,
    ) -> None:
        self.call_state = state
        self.policy = policy
        self.accepted_at = accepted_at
        self.cancelled = False
        self._backoff = timedelta(seconds=backoff_seconds or policy.initial_backoff_seconds)
        self._can_continue = can_continue
        if is_reset_run():
            # An earlier run may have sent it: nothing here may claim it did not.
            state.provider_may_have_accepted = True

    # What a subclass provides.

    @property
    def send_at(self) -> str | None:
        return None

    async def attempt(self, attempt: int, not_after: datetime, summary: str) -> R:
        raise NotImplementedError

    def accepted(self, attempt: int, scheduled: datetime, result: R) -> None:
        raise NotImplementedError

    def set_status(self, status: SendStatus) -> None:
        raise NotImplementedError

    def upsert_status(self) -> None:
        raise NotImplementedError

    def ended_unsent(self, status: SendStatus, error: EmailError) -> None:
        """Called once the call ends unsent (status set by the loop's caller next)."""

    async def continue_as_new(self) -> NoReturn:
        raise NotImplementedError

    # The loop.

    def history_full(self) -> bool:
        """Time to continue as new: the run's history is full and the workflow can."""
        return self._can_continue and history_full()

    def backoff_seconds(self) -> float:
        return self._backoff.total_seconds()

    async def wait_until_due(self) -> bool:
        """Wait on a durable timer until `send_at` (a reschedule restarts it), continuing as
        new if signals fill the history meanwhile; False if cancelled."""
        if self.call_state.status != SendStatus.SCHEDULED:
            return not self.cancelled  # not scheduled, or a continued run past its `send_at`
        while not self.cancelled and (due := self.send_at) is not None:
            if datetime.fromisoformat(due) <= workflow.now():
                break
            await wait_until(
                lambda: self.cancelled or self.send_at != due or self.history_full(),
                datetime.fromisoformat(due) - workflow.now(),
            )
            if self.cancelled or self.send_at != due:
                continue
            if workflow.now() < datetime.fromisoformat(due):
                await self.continue_as_new()
        if not self.cancelled:
            self.set_status(SendStatus.QUEUED)
            self.upsert_status()
        return not self.cancelled

    def window_end(self) -> datetime:
        """`not_after`, fixed before the first attempt and carried from run to run."""
        state = self.call_state
        if state.not_after is None:
            due = datetime.fromisoformat(self.accepted_at)
            if self.send_at:
                due = max(due, datetime.fromisoformat(self.send_at))
            state.not_after = iso(due + timedelta(seconds=self.policy.window_seconds))
        return datetime.fromisoformat(state.not_after)

    async def held_back(self) -> bool:
        """Whether the call is not to be made at all (a suppressed recipient): the subclass
        checks, once, before the first attempt (`suppressed_among`), and ends the call
        itself if so."""
        return False

    async def suppressed_among(self, tenant_id: str | None, addresses: list[str]) -> set[str]:
        """Which `addresses` (canonical form) are on the tenant's suppression list: one
        local activity on the workflow's worker. Empty for a send without a tenant (lists
        are per tenant), if the list did not answer (the email goes as before lists
        existed; logged), or in an execution started before."""
        if tenant_id is None or not addresses or not changed(SUPPRESSION_CHECK):
            return set()
        try:
            found = await workflow.execute_local_activity_method(
                SuppressionActivities.check_suppressed,
                CheckSuppressedInput(tenant_id, addresses),
                start_to_close_timeout=CHECK_TIMEOUT,
                retry_policy=CHECK_RETRY,
            )
        except ActivityError:
            workflow.logger.warning("suppression check of a %s failed; sending", self.what)
            return set()
        return set(found.suppressed)

    async def send(self) -> R | None:
        """Attempt until accepted (the result), or None: cancelled, or held back before the
        first attempt (`held_back`); an unsent end raises."""
        state = self.call_state
        if state.attempt_count == 0 and not self.cancelled and await self.held_back():
            return None
        while not self.cancelled:
            if self.history_full():
                await self.continue_as_new()
            not_after = self.window_end()
            scheduled = workflow.now()
            if scheduled >= not_after:
                self.end_unsent(
                    EmailError(
                        errors.SEND_WINDOW_CLOSED,
                        "the send window ended before another attempt could be made",
                    )
                )
            attempt = state.attempt_count + 1
            self.set_status(SendStatus.SENDING)
            previous = state.attempts[-1] if state.attempts else None
            try:
                result = await self.attempt(attempt, not_after, attempt_summary(attempt, previous))
            except ActivityError as err:
                failure = failed_attempt(attempt, scheduled, err, self.quotes_provider)
                await self._retry_after(failure, not_after)
                continue
            self.accepted(attempt, scheduled, result)
            return result
        return None

    async def _retry_after(self, failure: FailedAttempt, not_after: datetime) -> None:
        """Record a failed attempt, then end the call or wait for the next attempt."""
        record = failure.record
        self.add_attempt(record, may_have_accepted=failure.may_have_accepted)
        error = EmailError(record.error_type or "", record.error_message or "")
        self.call_state.last_error = error
        delay = failure.retry_after if failure.retry_after is not None else self._backoff
        if failure.final:
            self.end_unsent(error)
        if workflow.now() + delay >= not_after:
            error.message += " (send window exhausted)"
            self.end_unsent(error)
        record.retry_in_seconds = delay.total_seconds()
        self.set_status(SendStatus.RETRYING)
        self.upsert_status()
        await wait_until(lambda: self.cancelled, delay)
        self._backoff = min(self._backoff * 2, timedelta(seconds=self.policy.max_backoff_seconds))

    def add_attempt(self, record: AttemptRecord, *, may_have_accepted: bool) -> None:
        """Count it, keep the first few and the latest, note an unknown outcome."""
        state = self.call_state
        state.attempt_count += 1
        state.attempts_omitted += keep(
            state.attempts, record, KEEP_FIRST_ATTEMPTS, KEEP_LAST_ATTEMPTS
        )
        if may_have_accepted:
            state.provider_may_have_accepted = True

    def end_unsent(self, error: EmailError) -> NoReturn:
        """End a call the provider did not take: `failed` or `undetermined` (`endings`)."""
        state = self.call_state
        status = unsent_ending(error, state.provider_may_have_accepted, self.what)
        state.last_error = error
        self.ended_unsent(status, error)
        self.set_status(status)
        self.upsert_status()
        workflow.logger.warning("%s ended %s: %s", self.what, status, error.type)
        raise ending_failure(self.what, status, state.attempt_count, error, state)

    async def wait_for_events(self, until: datetime, ended: Callable[[], bool]) -> bool:
        """After the call: wait (one timer) until `ended()` or `until`, continuing as new
        (with the time left) if a stream of events fills this run's history."""
        while not ended() and workflow.now() < until:
            await wait_until(lambda: ended() or self.history_full(), until - workflow.now())
            if not ended() and workflow.now() < until:
                await self.continue_as_new()
        return ended()
