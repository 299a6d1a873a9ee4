"""The handlers a workflow that sends emails adds for coalescing: a call's claim and its
outcome, routed to the right one of its emails (an invite has two: by digest, by call)."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.coalesce_types import (
        CALL_OUTCOME_SIGNAL,
        CLAIM_UPDATE,
        WITHDRAWN,
        ClaimInput,
        ClaimResult,
    )
    from activities.delivery_contract import message_sha256
    from workflows.coalesce.types import CallOutcome
    from workflows.delivery.changes import CLAIM_BEFORE_MESSAGE, changed
    from workflows.delivery.email import Delivery


class CoalescedHandlers:
    """Mixin; `_coalesced` names the workflow's emails (`SendEmail`: its `_delivery`)."""

    _delivery: Delivery

    def _coalesced(self) -> list[Delivery]:
        return [self._delivery]

    @workflow.update(name=CLAIM_UPDATE)
    def claim_for_call(self, data: ClaimInput) -> ClaimResult:
        """A coalesced call claims one of this workflow's emails (answered with its message)."""
        for delivery in self._coalesced():
            message = delivery.message
            if message is not None and message_sha256(message) == data.digest:
                return delivery.handoff.claim(data)
        # No message yet: this run has not rendered it (a task re-run after a worker died
        # between the hand-off and the task's completion). Its hand-off refuses the call
        # for good, so the call knows it never had the email and the coalescer composes it
        # again when the hand-off comes back (answered "withdrawn" alone, the email ended
        # `undetermined`, unsent: 3 of 300 in a chaos run).
        for delivery in self._coalesced():
            if delivery.message is None and changed(CLAIM_BEFORE_MESSAGE):
                return delivery.handoff.claim(data)
        return ClaimResult(WITHDRAWN)

    @workflow.signal(name=CALL_OUTCOME_SIGNAL)
    def call_outcome(self, outcome: CallOutcome) -> None:
        """How the call that claimed one of this workflow's emails ended for it."""
        for delivery in self._coalesced():
            if delivery.handoff.owns(outcome):
                delivery.handoff.on_outcome(outcome)
                return
        workflow.logger.info("ignored the outcome of call %s", outcome.call_id)
