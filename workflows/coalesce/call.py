"""`CoalescedCall`: one composed call of a coalescer, through the one delivery loop.

The loop (`ProviderCall`) owns the attempts, backoff, Retry-After, the send window (the
earliest of its emails' windows) and the honest ending; this driver says how one attempt
is made (`deliver_coalesced_call`, the composition and the key in its recorded input) and
turns the call's ending into one `CallOutcome` per email it claimed.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import NoReturn

from temporalio import workflow
from temporalio.common import Priority
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities import errors
    from activities.coalesce import CoalesceActivities
    from activities.coalesce_types import (
        CLAIMED,
        HELD,
        WITHDRAWN,
        CoalescedAttemptInput,
        CoalescedAttemptResult,
        CoalesceRef,
        call_idempotency_key,
    )
    from workflows.coalesce.types import CallOutcome, CallState
    from workflows.delivery.attempts import accepted_record, note_taken
    from workflows.delivery.history import iso
    from workflows.delivery.loop import SINGLE_ATTEMPT, ProviderCall
    from workflows.policy import DEFAULT_PRIORITY_KEY, DeliveryPolicy
    from workflows.status import SendStatus
    from workflows.types import AttemptRecord, EmailError

REFUSED = "refused by the provider"


class CoalescedCall(ProviderCall[CoalescedAttemptResult]):
    """One call of up to `max_batch` emails, composed once; never continues as new (the
    coalescer waits for its calls before it does)."""

    what = "coalesced call"
    # Its attempts are told to every email of the call, whatever its tenant: the provider's
    # words about a batch can name any of its recipients.
    quotes_provider = False

    def __init__(
        self,
        call_id: str,
        refs: list[CoalesceRef],
        policy: DeliveryPolicy,
        heartbeat_seconds: float = 0,
    ) -> None:
        self.state = CallState(not_after=min(ref.not_after for ref in refs))
        super().__init__(
            self.state,
            policy,
            accepted_at=iso(workflow.now()),
            backoff_seconds=None,
            can_continue=False,
        )
        self.call_id = call_id
        self.refs = refs
        self.heartbeat_seconds = heartbeat_seconds
        self.result: CoalescedAttemptResult | None = None

    async def attempt(
        self, attempt: int, not_after: datetime, summary: str
    ) -> CoalescedAttemptResult:
        best = min((ref.priority_key or DEFAULT_PRIORITY_KEY) for ref in self.refs)
        return await workflow.execute_activity_method(
            CoalesceActivities.send_coalesced,
            CoalescedAttemptInput(
                self.call_id,
                call_idempotency_key(self.call_id),
                self.refs,
                attempt,
                iso(not_after),
                list(self.state.may_have_been_taken_by),
            ),
            task_queue=self.policy.send_task_queue,
            # Claims first (one update per email, each a workflow task of the email's: slow
            # on a saturated worker, 40 s+ for 100 at 10,000 invites here), then the call.
            start_to_close_timeout=timedelta(seconds=self.policy.attempt_timeout_seconds + 60),
            # A killed worker's attempt is retried once its heartbeats stop, not after the
            # whole timeout above (no heartbeat for a transport that cannot deduplicate).
            heartbeat_timeout=(
                timedelta(seconds=self.heartbeat_seconds) if self.heartbeat_seconds else None
            ),
            schedule_to_close_timeout=not_after - workflow.now(),
            retry_policy=SINGLE_ATTEMPT,
            summary=f"{summary} · call {self.call_id} · {len(self.refs)} email(s)",
            priority=Priority(priority_key=best),
        )

    def accepted(self, attempt: int, scheduled: datetime, result: CoalescedAttemptResult) -> None:
        call = result.call
        started_at = call.started_at if call else iso(scheduled)
        record = accepted_record(attempt, scheduled, started_at, call.http_status if call else 0)
        self.add_attempt(record, may_have_accepted=False)
        self.result = result
        self.set_status(SendStatus.SENT)

    def add_attempt(self, record: AttemptRecord, *, may_have_accepted: bool) -> None:
        note_taken(self.state.may_have_been_taken_by, record, may_have_accepted=may_have_accepted)
        super().add_attempt(record, may_have_accepted=may_have_accepted)

    def set_status(self, status: SendStatus) -> None:
        self.state.status = status

    def upsert_status(self) -> None:
        """A call has no search attributes of its own: its emails have theirs."""

    async def continue_as_new(self) -> NoReturn:
        raise AssertionError("a coalesced call never continues as new")

    async def run(self) -> list[tuple[str, CallOutcome]]:
        """Send the call through the loop; then what each email is told (by workflow id)."""
        try:
            await self.send()
        except ApplicationError:
            return self._unsent_outcomes()
        assert self.result is not None
        return self._sent_outcomes(self.result)

    def never_had(self) -> set[str]:
        """The emails this call never had (each refused it for good, `ClaimResult.never`):
        it did not send them, on any attempt. Known only once it was sent."""
        if self.result is None:
            return set()
        return {i.email_id for i in self.result.items if i.claim == WITHDRAWN and i.never}

    def _outcome(self, status: SendStatus, **fields: object) -> CallOutcome:
        return CallOutcome(
            call_id=self.call_id,
            status=status,
            attempts=list(self.state.attempts),
            attempt_count=self.state.attempt_count,
            may_have_been_taken_by=list(self.state.may_have_been_taken_by),
            **fields,  # type: ignore[arg-type]
        )

    def _unsent_outcomes(self) -> list[tuple[str, CallOutcome]]:
        """The call ended unsent: every email of it ends the same way (one that was never
        claimed, or cancelled, ignores an outcome that is not its call's)."""
        error = self.state.last_error or EmailError("CallNotSent", "the call was not sent")
        outcome = self._outcome(self.state.status, error=error)
        return [(ref.workflow_id, replace(outcome, email_id=ref.email_id)) for ref in self.refs]

    def _sent_outcomes(self, result: CoalescedAttemptResult) -> list[tuple[str, CallOutcome]]:
        told: list[tuple[str, CallOutcome]] = []
        for ref, item in zip(self.refs, result.items, strict=True):
            if item.claim == HELD and item.held_by:
                # Claimed by a call this run does not know (a reset discarded it): it may
                # have gone out; the email ends undetermined, never sent twice.
                error = EmailError(
                    "CallDiscarded",
                    "the coalescer was reset after composing this email's call: "
                    "the provider may have accepted it",
                )
                outcome = CallOutcome(
                    item.held_by, SendStatus.UNDETERMINED, error=error, email_id=ref.email_id
                )
                told.append((ref.workflow_id, outcome))
            if item.claim != CLAIMED or item.outcome is None:
                continue
            call = result.call
            assert call is not None  # an email was claimed, so the provider was called
            common = {
                "email_id": ref.email_id,
                "http_status": call.http_status,
                "transport": call.transport,
                "started_at": call.started_at,
                "reports_delivery_events": call.reports_delivery_events,
            }
            if item.outcome.provider_message_id is not None:
                outcome = self._outcome(
                    SendStatus.SENT,
                    provider_message_id=item.outcome.provider_message_id,
                    **common,
                )
            else:
                refusal = EmailError(errors.REJECTED, item.outcome.refusal or REFUSED)
                outcome = self._outcome(SendStatus.FAILED, error=refusal, **common)
            told.append((ref.workflow_id, outcome))
        return told
