"""What a coalescer remembers of the calls it composed, so that no email is composed twice.

A reset run of an email knows nothing of the call that carried it and hands its ref in
again: the coalescer finds the email here and tells that run its call's outcome (the one the
call ends with if it is still in flight, else `undetermined`: it may have gone out), never
a second call. Held until the latest window of the call's emails and the outcome grace (past
its window no reset run could send it anyway); carried across continue-as-new (ids only,
about 45 bytes an email: some 40,000 held emails per shard fit a 2 MB payload).
"""

from __future__ import annotations

from datetime import datetime

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.coalesce_types import CoalesceRef
    from workflows.coalesce.handoff import OUTCOME_GRACE
    from workflows.coalesce.types import CallOutcome, HeldCall
    from workflows.delivery.history import iso
    from workflows.status import SendStatus
    from workflows.types import EmailError


def carried_bytes(call: HeldCall) -> int:
    """About what one held call adds to a continued run's input (its JSON)."""
    return 64 + len(call.call_id) + len(call.until) + sum(len(e) + 4 for e in call.email_ids)


def carried_over(email_id: str, call_id: str) -> CallOutcome:
    """For a reset run of an email whose call has ended: it may have gone out."""
    error = EmailError(
        "CallAlreadyMade",
        f"this email was composed into call {call_id} before a reset: "
        "the provider may have accepted it; it is not sent again",
    )
    return CallOutcome(call_id, SendStatus.UNDETERMINED, error=error, email_id=email_id)


class Held:
    """The calls of one shard whose emails are still theirs, by call and by email."""

    def __init__(self, calls: list[HeldCall]) -> None:
        self._calls = {call.call_id: call for call in calls}
        self._holder = {e: call.call_id for call in calls for e in call.email_ids}
        # Emails handed in again while their call was in flight: told when it ends.
        self.rejoined: set[str] = set()
        # What carrying them costs a continued run's input (`carried_bytes`).
        self.bytes = sum(carried_bytes(call) for call in calls)

    def hold(self, call_id: str, refs: list[CoalesceRef]) -> None:
        until = max(datetime.fromisoformat(ref.not_after) for ref in refs) + OUTCOME_GRACE
        call = HeldCall(call_id, iso(until), [ref.email_id for ref in refs])
        self._calls[call_id] = call
        self._holder.update((email_id, call_id) for email_id in call.email_ids)
        self.bytes += carried_bytes(call)

    def release(self, call_id: str, email_ids: set[str]) -> None:
        """The call never had these emails: they are no longer its own."""
        call = self._calls.get(call_id)
        if call is None or not email_ids:
            return
        self.bytes -= carried_bytes(call)
        call.email_ids = [e for e in call.email_ids if e not in email_ids]
        for email_id in email_ids:
            if self._holder.get(email_id) == call_id:
                del self._holder[email_id]
        if call.email_ids:
            self.bytes += carried_bytes(call)
        else:
            del self._calls[call_id]

    def holder(self, email_id: str) -> str | None:
        return self._holder.get(email_id)

    def prune(self) -> None:
        """Forget the calls whose emails' windows (and grace) have all passed."""
        now = workflow.now()
        for call in [c for c in self._calls.values() if datetime.fromisoformat(c.until) < now]:
            del self._calls[call.call_id]
            self.bytes -= carried_bytes(call)
            for email_id in call.email_ids:
                self._holder.pop(email_id, None)

    def next_expiry(self) -> datetime:
        """When the first held call may be forgotten."""
        return min(datetime.fromisoformat(call.until) for call in self._calls.values())

    def carried(self) -> list[HeldCall]:
        return list(self._calls.values())

    def __bool__(self) -> bool:
        return bool(self._calls)
