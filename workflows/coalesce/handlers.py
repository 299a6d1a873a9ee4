"""The handlers a one-email workflow adds for coalescing: the call's claim and its outcome."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.coalesce_types import CALL_OUTCOME_SIGNAL, CLAIM_UPDATE, ClaimInput, ClaimResult
    from workflows.coalesce.types import CallOutcome
    from workflows.delivery.email import Delivery


class CoalescedHandlers:
    """Mixin of `SendEmail`: the workflow class sets `_delivery` in its `__init__`."""

    _delivery: Delivery

    @workflow.update(name=CLAIM_UPDATE)
    def claim_for_call(self, data: ClaimInput) -> ClaimResult:
        """A coalesced call claims this email (answered with its pinned message)."""
        return self._delivery.handoff.claim(data)

    @workflow.signal(name=CALL_OUTCOME_SIGNAL)
    def call_outcome(self, outcome: CallOutcome) -> None:
        """How the call that claimed this email ended for it."""
        self._delivery.handoff.on_outcome(outcome)
