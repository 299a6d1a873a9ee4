"""One email's side of coalescing: hand its ref to the shard's coalescer, answer the call's
claim, take the call's outcome as its own.

Until a call claims it, the email is `queued` and can be cancelled (a claim that comes after
the cancel is refused); once claimed it is `sending` and cannot be (the call may go out).
Everything else is the email's own, as if it had made the call: its id, status, attempts
(the call's), provider id, delivery events, and `call_id`, the call that carried it.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities import errors
    from activities.coalesce import CoalesceActivities
    from activities.coalesce_types import (
        CLAIMED,
        HELD,
        WITHDRAWN,
        ClaimInput,
        ClaimResult,
        EnqueueInput,
    )
    from activities.delivery_contract import message_sha256
    from activities.types import SendAttemptResult
    from workflows.coalesce.types import CallOutcome, CoalescerInput
    from workflows.delivery.changes import REFUSALS_FINAL, changed
    from workflows.delivery.endings import is_reset_run
    from workflows.delivery.history import iso, wait_until
    from workflows.policy import DEFAULT_PRIORITY_KEY
    from workflows.status import SendStatus
    from workflows.types import EmailError

if TYPE_CHECKING:
    from workflows.delivery.email import Delivery

ENQUEUE_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_attempts=5)
# After its window, how long an email waits for the outcome of a call that claimed it.
OUTCOME_GRACE = timedelta(seconds=120)


class Handoff:
    """The coalesced path of one `Delivery`."""

    def __init__(self, delivery: Delivery) -> None:
        self._delivery = delivery
        self.outcome: CallOutcome | None = None
        self._waiting = False
        # The calls this email refused (`claim`): refused on every attempt of theirs.
        self._refused: set[str] = set()

    @property
    def wanted(self) -> bool:
        return self._delivery.policy.coalesce_shards > 0

    async def send(self) -> bool | None:
        """Through a coalesced call: True once sent, False if cancelled before a call
        claimed it, None if the transport's batch call cannot carry it (send it alone). A
        call that did not send it ends the email as the loop would (`end_unsent` raises)."""
        delivery = self._delivery
        state, policy = delivery.state, delivery.policy
        assert delivery.message is not None
        not_after = delivery.window_end()
        wanted = policy.priority
        enqueued = await workflow.execute_local_activity_method(
            CoalesceActivities.enqueue,
            EnqueueInput(
                email_id=state.id,
                workflow_id=workflow.info().workflow_id,
                message=delivery.message,
                not_after=iso(not_after),
                task_queue=workflow.info().task_queue,
                send_task_queue=policy.send_task_queue,
                shards=policy.coalesce_shards,
                start=asdict(CoalescerInput(shard_id="", policy=policy)),
                priority_key=(wanted.priority_key if wanted else None) or DEFAULT_PRIORITY_KEY,
                fairness_key=(wanted.fairness_key if wanted else None) or "",
            ),
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=ENQUEUE_RETRY,
        )
        if not enqueued.enqueued:
            return None
        self._waiting = True
        await wait_until(
            lambda: self.outcome is not None or (delivery.cancelled and state.call_id is None),
            not_after + OUTCOME_GRACE - workflow.now(),
        )
        self._waiting = False
        if self.outcome is None:
            if delivery.cancelled and state.call_id is None:
                return False
            self._no_outcome()
        assert self.outcome is not None
        return self._apply(self.outcome)

    def claim(self, data: ClaimInput) -> ClaimResult:
        """A call asks for this email: the same call always gets it (every attempt sends the
        same bytes); another call never does; a cancelled or ended email is withdrawn."""
        delivery, state = self._delivery, self._delivery.state
        if state.call_id is not None:
            if state.call_id == data.call_id:
                return ClaimResult(CLAIMED, delivery.message)
            if self.outcome is None and self._waiting:
                return ClaimResult(HELD, held_by=state.call_id)
            return ClaimResult(WITHDRAWN)
        if data.call_id in self._refused:
            return self._refusal()
        message = delivery.message
        if (
            not self._waiting
            or delivery.cancelled
            or state.status != SendStatus.QUEUED
            or message is None
            or message_sha256(message) != data.digest
        ):
            if not changed(REFUSALS_FINAL):
                return ClaimResult(WITHDRAWN)
            # Final for this call: a later attempt of it must send the same bytes, and
            # (not waiting yet: a hand-off retried after a crash) it may come back.
            self._refused.add(data.call_id)
            return self._refusal()
        state.call_id = data.call_id
        delivery.set_status(SendStatus.SENDING)
        workflow.logger.info("email %s claimed by call %s", state.id, data.call_id)
        return ClaimResult(CLAIMED, message)

    def _refusal(self) -> ClaimResult:
        """Withdrawn from this call for good; `never` unless this is a reset run (a run
        before the reset may have been claimed by it: what it answered is unknown here)."""
        return ClaimResult(WITHDRAWN, never=not is_reset_run())

    def owns(self, outcome: CallOutcome) -> bool:
        """Whether the outcome is this email's: its call's, or, for a reset run that knows
        no call yet, the one its coalescer tells it on its return (`rejoined`)."""
        state = self._delivery.state
        if outcome.call_id == state.call_id:
            return True
        return outcome.rejoined and state.call_id is None and outcome.email_id == state.id

    def on_outcome(self, outcome: CallOutcome) -> None:
        """The outcome of the call that carried this email (any other is ignored)."""
        if not self.owns(outcome) or self.outcome is not None:
            workflow.logger.info("ignored the outcome of call %s", outcome.call_id)
            return
        self._delivery.state.call_id = outcome.call_id
        self.outcome = outcome

    def _no_outcome(self) -> None:
        """No outcome came within the window and its grace: claimed -> may have gone out."""
        delivery, state = self._delivery, self._delivery.state
        if state.call_id is not None:
            state.provider_may_have_accepted = True
        delivery.end_unsent(
            EmailError(
                "CallOutcomeMissing",
                "no coalesced call told this email its outcome before its send window ended",
            )
        )

    def _apply(self, outcome: CallOutcome) -> bool | None:
        """The call's outcome as this email's: its attempts, then sent or an unsent end; None
        when its call, which the provider provably did not take, hands it back to go alone
        (behind a transport that fails over: `errors.SEND_ALONE`)."""
        delivery, state = self._delivery, self._delivery.state
        records = list(outcome.attempts)
        last = records.pop() if outcome.status == SendStatus.SENT and records else None
        for record in records:
            if record.outcome == "accepted" and outcome.error is not None:
                # The call was taken, this email of it refused: its attempt says so.
                record = replace(
                    record,
                    outcome="permanent_error",
                    error_type=outcome.error.type,
                    error_message=outcome.error.message,
                )
            delivery.add_attempt(record, may_have_accepted=False)
        for provider in outcome.may_have_been_taken_by:
            if provider not in state.may_have_been_taken_by:
                state.may_have_been_taken_by.append(provider)
            state.provider_may_have_accepted = True  # as a single send's 500 leaves it
        state.attempt_count = max(state.attempt_count, outcome.attempt_count - (last is not None))
        if outcome.status == SendStatus.SENT and last is not None:
            delivery.accepted(
                outcome.attempt_count,
                datetime.fromisoformat(last.scheduled_at),
                SendAttemptResult(
                    provider_message_id=outcome.provider_message_id or "",
                    http_status=outcome.http_status,
                    transport=outcome.transport or "",
                    started_at=outcome.started_at or last.scheduled_at,
                    duration_ms=0.0,
                    reports_delivery_events=outcome.reports_delivery_events,
                ),
            )
            return True
        error_type = outcome.error.type if outcome.error else None
        if outcome.status == SendStatus.FAILED and error_type == errors.SEND_ALONE:
            # FAILED: provably not taken (a reset coalescer's call ends undetermined instead).
            workflow.logger.info("email %s goes alone after call %s", state.id, state.call_id)
            state.call_id = None
            return None
        state.provider_may_have_accepted = outcome.status == SendStatus.UNDETERMINED
        delivery.end_unsent(outcome.error or EmailError("CallNotSent", "the call was not sent"))
