"""`Coalescer`: one shard's queue of due single sends, composed into provider batch calls.

Nobody waits for a batch that is not coming: a ref that arrives while the shard has no call
in flight goes at once, as a call of one. Messages accumulate only while the shard's calls
are in flight (each claims its emails, then waits for its turn at the provider's rate); the
next call takes up to `max_batch` of them in priority-then-tenant order
(`workflows.policy.compose`) once the last one has ended, or at once when a full call is
waiting (up to `MAX_IN_FLIGHT`): a full call's claims overlap the calls before it instead of
queueing behind them, and a partial one never goes beside another (it would cost a request).

Exactly once: the composition is the call activity's recorded input (refs, key), the loop
retries it with the same key and the emails' claims keep its bytes the same; an email
claimed by one call is never claimed by another. A reset run knows nothing of its discarded
calls: their emails answer `held_by_other_call` and end `undetermined`, never sent twice. A
reset run of an EMAIL hands its ref in again: the coalescer remembers which call holds it
(`Held`, until its window ends) and tells that run the call's outcome instead of composing it
again; it stays alive while it holds any (one timer, to the first hold's end).

Bounded: the history holds refs (ids and digests, ~300 bytes), never messages; the run
continues as new once its history is full, after its calls have ended, carrying only the
refs still waiting and the calls held. What it carries stays under `CARRY_BUDGET`: a ref
that would pass it is told to go alone (`errors.SEND_ALONE`, as a call that hands its emails
back), so a shard never outgrows the server's payload limit however many emails wait or
are held; more shards (`COALESCE_SHARDS`) carry more. It ends after `IDLE` with nothing to
do (the next ref starts it again); while it holds calls it sleeps until the first hold may
be forgotten.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict, replace
from datetime import timedelta

from temporalio import workflow
from temporalio.common import VersioningBehavior
from temporalio.exceptions import FailureError

with workflow.unsafe.imports_passed_through():
    from activities import errors
    from activities.coalesce_types import (
        CALL_OUTCOME_SIGNAL,
        CALL_STATE_QUERY,
        ENQUEUE_SIGNAL,
        CoalesceRef,
    )
    from workflows.coalesce.call import CoalescedCall
    from workflows.coalesce.held import Held, carried_over
    from workflows.coalesce.types import CallOutcome, CallState, CoalescerInput
    from workflows.delivery.history import history_full, wait_until
    from workflows.policy import compose
    from workflows.status import SendStatus
    from workflows.types import EmailError

# Calls of one shard in flight at once: while they are, the next call's messages gather. A
# second and later call goes only full (bench, 1,000 invites: the claims of one call of ~50
# took 1-3 s, its provider request 0.1 s; one call at a time made 33 requests in 38.7 s).
MAX_IN_FLIGHT = 4
# With nothing waiting and nothing in flight this long, the run ends.
IDLE = timedelta(seconds=60)
# Bytes a continued run may carry (refs waiting, calls held: about 300 and 50 bytes an
# email), under the server's 2 MB payload limit with room for the rest of the input and the
# codec: some 5,000 waiting or 30,000 held emails per shard.
CARRY_BUDGET = 1_500_000


def ref_bytes(ref: CoalesceRef) -> int:
    """What a waiting ref adds to a continued run's input (its JSON)."""
    return len(json.dumps(asdict(ref))) + 2


@workflow.defn(name=CoalescerInput.WORKFLOW, versioning_behavior=VersioningBehavior.PINNED)
class Coalescer:
    """One shard's queue and calls."""

    @workflow.init
    def __init__(self, data: CoalescerInput) -> None:
        self._data = data
        self._pending: list[CoalesceRef] = list(data.pending)
        self._pending_bytes = sum(ref_bytes(ref) for ref in self._pending)
        self._known = {ref.email_id for ref in self._pending}
        self._held = Held(data.held)
        self._in_flight: dict[str, CoalescedCall] = {}  # the calls under way, by id
        self._telling = 0
        self._calls = data.calls_made
        self._sent = data.emails_sent

    @workflow.signal(name=ENQUEUE_SIGNAL)
    def enqueue(self, ref: CoalesceRef) -> None:
        """A due email's ref (a repeat of a waiting one, from a retried hand-off, is ignored;
        one a call holds, from a reset run of its email, is told that call's outcome)."""
        if ref.email_id in self._known:
            return
        call_id = self._held.holder(ref.email_id)
        if call_id is not None:
            self._rejoin(ref, call_id)
            return
        self._add(ref)

    def _add(self, ref: CoalesceRef) -> None:
        """Wait for a call, or go alone when the shard carries all it may."""
        size = ref_bytes(ref)
        if self._pending_bytes + self._held.bytes + size > CARRY_BUDGET:
            self._go_alone(ref)
            return
        self._known.add(ref.email_id)
        self._pending.append(ref)
        self._pending_bytes += size
        self._show()

    @workflow.query(name="coalescer_status")
    def status(self) -> dict[str, int]:
        return {
            "pending": len(self._pending),
            "in_flight": len(self._in_flight),
            "calls": self._calls,
            "emails_sent": self._sent,
        }

    @workflow.query(name=CALL_STATE_QUERY)
    def call_state(self, call_id: str) -> CallState | None:
        """A call still being made: its status and attempts so far (an email's read shows
        its call's retries from here); None once it has ended (its emails know)."""
        call = self._in_flight.get(call_id)
        return call.state if call is not None else None

    @workflow.run
    async def run(self, data: CoalescerInput) -> dict[str, int]:
        while True:
            ready = await wait_until(
                lambda: self._can_compose() or history_full(),
                self._wait(),
            )
            if not ready:
                self._held.prune()
                if not self._pending and self._idle() and not self._held:
                    await workflow.wait_condition(workflow.all_handlers_finished)
                    if not self._pending:
                        return self.status()
                continue
            if history_full():
                # No new call: the ones in flight end and tell their emails, then the
                # next run takes the refs still waiting.
                # (A reset email's answer, told from a handler, counts in `_idle`.)
                await workflow.wait_condition(
                    lambda: self._idle() and workflow.all_handlers_finished()
                )
                self._held.prune()
                workflow.continue_as_new(
                    replace(
                        self._data,
                        pending=self._pending,
                        calls_made=self._calls,
                        emails_sent=self._sent,
                        held=self._held.carried(),
                    ),
                    # The next run keeps this one's task timeout (the hand-off sets it).
                    task_timeout=workflow.info().task_timeout,
                )
            chosen, self._pending = compose(self._pending, data.max_batch, data.max_bytes)
            self._pending_bytes -= sum(ref_bytes(ref) for ref in chosen)
            self._calls += 1
            # Unique per composition, also in a reset run (its random seed is new).
            call_id = f"{data.shard_id}/{self._calls}-{workflow.uuid4().hex[:12]}"
            self._known.difference_update(ref.email_id for ref in chosen)
            self._held.hold(call_id, chosen)
            call = CoalescedCall(call_id, chosen, data.policy, data.heartbeat_seconds)
            self._in_flight[call_id] = call
            self._show()
            asyncio.create_task(self._call(call))

    def _can_compose(self) -> bool:
        """A call of whatever waits when none is in flight; beside others only a full one."""
        if not self._pending or len(self._in_flight) >= MAX_IN_FLIGHT:
            return False
        return not self._in_flight or len(self._pending) >= self._data.max_batch

    def _wait(self) -> timedelta:
        """How long to wait for work: `IDLE`; with nothing to do but calls held, until the
        first hold may be forgotten (one timer, not one a minute for a day)."""
        if self._pending or self._in_flight or not self._held:
            return IDLE
        return max(IDLE, self._held.next_expiry() - workflow.now())

    def _idle(self) -> bool:
        """No call in flight and every email of the ended calls told."""
        return not self._in_flight and self._telling == 0

    async def _call(self, call: CoalescedCall) -> None:
        call_id, refs = call.call_id, call.refs
        told = await call.run()
        # What it never had (refused while its email was not waiting yet: a hand-off
        # retried after a crash) is not its own: composed again when it comes back.
        never_had = call.never_had()
        self._held.release(call_id, never_had)
        told, again = self._with_rejoined(call_id, refs, told, never_had)
        # The slot is free once the call has ended: the next call need not wait for the
        # tellings (a continue-as-new does: `_telling`).
        self._in_flight.pop(call_id, None)
        for ref in again:
            self._add(ref)
        self._sent += sum(1 for _, o in told if o.provider_message_id)
        self._show()  # counted first: the details once said "0 email(s) sent" after a send
        await self._tell_all(told)

    def _rejoin(self, ref: CoalesceRef, call_id: str) -> None:
        """A reset run of an email a call holds: told when its call ends, or now."""
        if call_id in self._in_flight:
            self._held.rejoined.add(ref.email_id)
            return
        outcome = replace(carried_over(ref.email_id, call_id), rejoined=True)
        asyncio.create_task(self._tell_all([(ref.workflow_id, outcome)]))

    def _go_alone(self, ref: CoalesceRef) -> None:
        """The shard carries all it may: this email goes alone, as if a call it never
        joined had handed it back (no call claimed it: nothing went out)."""
        workflow.logger.warning("coalescer full: email %s goes alone", ref.email_id)
        error = EmailError(
            errors.SEND_ALONE, "its coalescer carries all it may: the email is sent alone"
        )
        outcome = CallOutcome(
            "", SendStatus.FAILED, error=error, email_id=ref.email_id, rejoined=True
        )
        asyncio.create_task(self._tell_all([(ref.workflow_id, outcome)]))

    def _with_rejoined(
        self,
        call_id: str,
        refs: list[CoalesceRef],
        told: list[tuple[str, CallOutcome]],
        never_had: set[str],
    ) -> tuple[list[tuple[str, CallOutcome]], list[CoalesceRef]]:
        """Mark what the emails handed in again while this call was made are told (they
        know no call): the call's outcome for them, or `undetermined` when it has none for
        them; and those it never had, which wait for the next call instead."""
        back = {ref.email_id for ref in refs} & self._held.rejoined
        if not back:
            return told, []
        self._held.rejoined -= back
        marked = [(w, replace(o, rejoined=o.email_id in back)) for w, o in told]
        have = {o.email_id for _, o in told}
        again = [ref for ref in refs if ref.email_id in back & never_had]
        marked += [
            (ref.workflow_id, replace(carried_over(ref.email_id, call_id), rejoined=True))
            for ref in refs
            if ref.email_id in back and ref.email_id not in have | never_had
        ]
        return marked, again

    async def _tell_all(self, told: list[tuple[str, CallOutcome]]) -> None:
        self._telling += 1
        await asyncio.gather(*(self._tell(workflow_id, o) for workflow_id, o in told))
        self._telling -= 1

    async def _tell(self, workflow_id: str, outcome: CallOutcome) -> None:
        try:
            await workflow.get_external_workflow_handle(workflow_id).signal(
                CALL_OUTCOME_SIGNAL, outcome
            )
        except FailureError:
            # Its workflow ended (it no longer waits for anything).
            workflow.logger.info("email workflow of call %s is gone", outcome.call_id)

    def _show(self) -> None:
        workflow.set_current_details(
            f"**{len(self._pending)}** waiting · **{len(self._in_flight)}** call(s) in flight · "
            f"{self._calls} call(s), {self._sent} email(s) sent"
        )
