"""`Delivery`: one email's provider call (a call of one message) and what follows it.

A 200 from the provider means accepted, not delivered: after the send the workflow waits
(one timer, bounded) for the provider's delivery events, which the webhook route signals,
unless the transport reports none (`reports_delivery_events`: an outbox, SMTP), in which
case the send ends `sent`. A `cancel` update (or, when no worker answers it, the durable
`cancel_request` signal) stops a send that has not gone out; `reschedule` moves its
`send_at`.

The message is pinned once (workflow input, or the render's recorded result) and given to
the first attempt only: a later attempt's send activity reads it with the `pinned_message`
query and checks its digest, so a history holds at most two copies whatever the number of
attempts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, NoReturn, Protocol

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.delivery_contract import SendKind, message_sha256, provider_idempotency_key
    from activities.send import SendActivities
    from activities.types import EmailMessage, SendAttemptInput, SendAttemptResult
    from workflows.app_events.emit import AppEvents, app_event_data, forwarded, unsent_event
    from workflows.coalesce.handoff import Handoff
    from workflows.delivery.attempts import accepted_record, note_taken
    from workflows.delivery.endings import CANCEL_REJECTED, RESCHEDULE_REJECTED
    from workflows.delivery.events import (
        Dedupe,
        forwarded_only,
        keep_event,
        next_status,
        tracked,
    )
    from workflows.delivery.history import handlers_done_then_log, iso
    from workflows.delivery.labels import show_email
    from workflows.delivery.loop import attempt_options
    from workflows.delivery.suppression import SuppressionSteps
    from workflows.policy import DeliveryPolicy
    from workflows.search_attributes import EMAIL_STATUS, PROVIDER_MESSAGE_ID
    from workflows.status import ENDING_DELIVERY_STATUSES, SendStatus
    from workflows.types import (
        AttemptRecord,
        CancelResult,
        ContinuedDelivery,
        DeliveryEventInput,
        EmailError,
        EmailStatusResult,
        RescheduleResult,
    )

# Nothing has gone out yet in these states (`retrying` only after definite refusals).
CANCELLABLE = frozenset({SendStatus.SCHEDULED, SendStatus.QUEUED, SendStatus.RETRYING})


class SendOptions(Protocol):
    """What a send's options carry for the delivery loop (a workflow input, say)."""

    @property
    def policy(self) -> DeliveryPolicy: ...
    @property
    def tenant_id(self) -> str | None: ...
    @property
    def send_at(self) -> str | None: ...


# How a workflow continues as new with a send's carry and its accept time: it never returns
# (a workflow with several sends parks this one until all of them are at such a point).
ContinueAsNew = Callable[[str, ContinuedDelivery], Awaitable[NoReturn]]


class Delivery(SuppressionSteps):
    """One email: its status, its call, its delivery events; lives inside a workflow.

    `message`: the email when the workflow input holds it (`SendEmail`); otherwise it is
    pinned when the send starts (`run`'s `render`) and a continued run gets it from the
    carry. `idempotency_key`: another email of the same workflow (an invite's reminder)
    needs its own; `visible=False`: its status stays out of the search attributes.
    `continue_as_new`: how the workflow continues as new (without it, this send never does).
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
        if continued is None:
            now = iso(workflow.now())
            status = SendStatus.SCHEDULED if options.send_at else SendStatus.QUEUED
            self.state = EmailStatusResult(
                id=email_id,
                kind=kind,
                status=status,
                created_at=now,
                updated_at=now,
                send_at=options.send_at,
                tenant_id=options.tenant_id,
            )
        else:
            self.state = continued.state
            self.state.runs += 1
        super().__init__(
            self.state,
            options.policy,
            accepted_at=accepted_at or iso(workflow.info().workflow_start_time),
            backoff_seconds=continued.backoff_seconds if continued else None,
            can_continue=continue_as_new is not None,
        )
        self.idempotency_key = idempotency_key
        self.visible = visible
        self._continue_with = continue_as_new
        self._message_in_input = message is not None
        self.message = continued.message if message is None and continued else message
        self._sent = continued.sent if continued else False
        self._tracking_until = continued.tracking_until if continued else None
        self._dedupe = Dedupe(continued.seen if continued else None)
        self._reports_events = True
        self._listening_until: datetime | None = None
        self._metrics = workflow.metric_meter()
        self._app_events = AppEvents(self.state.tenant_id, email_id)
        self.handoff = Handoff(self)
        self._suppression_checked = False

    async def run(
        self, render: Callable[[], Awaitable[EmailMessage]] | None = None
    ) -> EmailStatusResult:
        """The send's whole life: wait until due, pin the message, send, track delivery;
        it ends once its events are handed to the app's webhooks."""
        try:
            await self._run(render)
        except (Exception, asyncio.CancelledError):
            # Ended unsent (raises) or stopped: its `email.failed` is handed over all the
            # same. (Not on GeneratorExit: an evicted workflow runs no workflow code.)
            await self._app_events.drained()
            raise
        await self._app_events.drained()
        return self.state

    @property
    def handing_over(self) -> bool:
        """Whether this email's app events are being handed over (a local activity): a
        workflow holding the email must not end meanwhile (its marker cannot follow the
        completion; see `workflows.delivery.history.settled`)."""
        return self._app_events.handing_over

    async def _run(self, render: Callable[[], Awaitable[EmailMessage]] | None) -> None:
        if self.send_at and self.state.runs == 1:
            self.app_event("email.scheduled")
        if not await self.wait_until_due():
            return
        if not self._sent:
            if self.message is None:
                if render is None:
                    raise ValueError("a send without a message needs a render step")
                self.message = await render()
            # Through a coalesced call when the transport's batch call can carry it (the
            # suppression check comes first on that path too).
            coalesced = None
            if self.handoff.wanted:
                if self.state.attempt_count == 0 and await self.held_back():
                    return
                coalesced = await self.handoff.send()
            if coalesced is False or (coalesced is None and await self.send() is None):
                return  # cancelled or suppressed
        await self.track_delivery()
        await self.suppress_if_refused()

    @property
    def send_at(self) -> str | None:
        return self.state.send_at

    async def attempt(self, attempt: int, not_after: datetime, summary: str) -> SendAttemptResult:
        assert self.message is not None
        key = self.idempotency_key or provider_idempotency_key(workflow.info().workflow_id)
        return await workflow.execute_activity_method(
            SendActivities.send_email,
            # The message in the first attempt only (most sends need no other, and it needs
            # no query to the workflow's worker); later attempts read the pinned one.
            SendAttemptInput(
                message=self.message if self.state.attempt_count == 0 else None,
                idempotency_key=key,
                attempt=attempt,
                message_sha256=message_sha256(self.message),
                not_after=iso(not_after),
                may_have_been_taken_by=self.may_have_been_taken_by(),
            ),
            **attempt_options(self.policy, not_after, summary),
        )

    def accepted(self, attempt: int, scheduled: datetime, result: SendAttemptResult) -> None:
        record = accepted_record(attempt, scheduled, result.started_at, result.http_status)
        record.provider_message_id = result.provider_message_id
        record.provider = result.transport
        record.failover_from, record.failover_reason = result.failover_from, result.failover_reason
        self.add_attempt(record, may_have_accepted=False)
        self.state.provider_message_id = result.provider_message_id
        self.state.transport = self.state.provider = result.transport
        self.state.failover_from = result.failover_from
        self.state.failover_reason = result.failover_reason
        self.state.sent_at = record.finished_at
        self.state.last_error = None
        self._sent = True
        self._reports_events = result.reports_delivery_events
        self.set_status(SendStatus.SENT)
        self._count(SendStatus.SENT)
        self.app_event("email.sent")
        workflow.logger.info("email %s accepted after %d attempt(s)", self.state.id, attempt)

    def add_attempt(self, record: AttemptRecord, *, may_have_accepted: bool) -> None:
        if self.state.first_attempt_at is None:
            self.state.first_attempt_at = record.scheduled_at
        note_taken(self.state.may_have_been_taken_by, record, may_have_accepted=may_have_accepted)
        super().add_attempt(record, may_have_accepted=may_have_accepted)

    def may_have_been_taken_by(self) -> list[str]:
        """What the next attempt is told of earlier ones (the failover transport moves an
        email only while this is empty). A run that comes from a reset, or a state from
        before the list, knows only that some provider may have taken it."""
        taken = list(self.state.may_have_been_taken_by)
        if not taken and self.state.provider_may_have_accepted:
            taken = ["unknown"]
        return taken

    def ended_unsent(self, status: SendStatus, error: EmailError) -> None:
        self._count(status)
        # One hand-over whatever the ending: which ending it is can depend on whether this
        # run comes from a reset, which a replay cannot see; a command must not. Only
        # `email.failed` is an event apps subscribe to (`undetermined` has no Resend type).
        self.app_event(unsent_event(status), failed={"reason": error.type})

    def app_event(self, event_type: str, **data: Any) -> None:
        """Hand an event about this email to the app's webhooks (our id, Resend's shape)."""
        self._app_events.emit(event_type, app_event_data(self.state, self.message, data))

    async def continue_as_new(self) -> NoReturn:
        await self._app_events.drained()
        await handlers_done_then_log(self.state.kind.value, self.state.id, self.state.attempt_count)
        assert self._continue_with is not None  # see `history_full`
        await self._continue_with(self.accepted_at, self.carry())
        raise AssertionError("unreachable: the workflow continued as new")

    def carry(self) -> ContinuedDelivery:
        """What this send carries into the workflow's next run (see `ContinuedDelivery`)."""
        return ContinuedDelivery(
            state=self.state,
            message=None if self._message_in_input else self.message,
            backoff_seconds=self.backoff_seconds(),
            sent=self._sent,
            tracking_until=self._tracking_until,
            seen=self._dedupe.carry(),
        )

    def pinned_message(self, digest: str | None = None) -> EmailMessage | None:
        """The message every attempt sends, if it is the one of `digest`."""
        if self.message is None or (digest and message_sha256(self.message) != digest):
            return None
        return self.message

    # Delivery events.

    def on_delivery_event(self, event: DeliveryEventInput) -> None:
        """Record a provider event once; before the send is recorded it is applied later."""
        known = tracked(event) or forwarded_only(event)
        if not known or not self._dedupe.first_time(self.state.id, event):
            workflow.logger.info("ignored repeated or unknown event %s", event.type)
            return
        self.app_event(event.type, **forwarded(event))
        if not tracked(event):
            return
        self.state.delivery_event_count += 1
        self.state.delivery_events_omitted += keep_event(self.state.delivery_events, event)
        # A webhook can overtake the activity's completion: it is applied after the send.
        if self._sent and self._apply(event.type):
            self.upsert_status()

    def _apply(self, event_type: str) -> bool:
        status = next_status(self.state.status, event_type)
        if status is None:
            return False
        self.set_status(status)
        return True

    async def track_delivery(self) -> None:
        """After the send: apply early events, then wait (one timer) for a final one unless
        the transport reports none."""
        if self._tracking_until is None:
            for record in list(self.state.delivery_events):
                self._apply(record.type)
            self.upsert_status(provider_message_id=self.state.provider_message_id)
            # `delivered` is not an ending: a complaint can still follow it.
            if not self._reports_events or self.state.status in ENDING_DELIVERY_STATUSES:
                return
            wait = timedelta(seconds=self.policy.delivery_wait_seconds)
            self._tracking_until = iso(workflow.now() + wait)
        self._listening_until = datetime.fromisoformat(self._tracking_until)
        self._show()
        final = await self.wait_for_events(
            self._listening_until, lambda: self.state.status in ENDING_DELIVERY_STATUSES
        )
        self._listening_until = None
        self._show()
        if not final:
            workflow.logger.info("no final delivery event for %s; status stays", self.state.id)

    # Cancel and reschedule.

    def _cancellable(self) -> bool:
        return self.state.status in CANCELLABLE and not self.state.provider_may_have_accepted

    def check_cancellable(self) -> None:
        """Validator of the `cancel` update: reject once an attempt may have gone out."""
        if not self._cancellable():
            raise ApplicationError(
                f"email is {self.state.status}; only a send that has not gone out can be cancelled",
                type=CANCEL_REJECTED,
            )

    def cancel(self) -> CancelResult:
        self.cancelled = True
        self.state.cancelled_at = iso(workflow.now())
        self.set_status(SendStatus.CANCELLED)
        self.upsert_status()
        self._count(SendStatus.CANCELLED)
        self.app_event("email.canceled")
        workflow.logger.info("email %s cancelled", self.state.id)
        return CancelResult(status=SendStatus.CANCELLED)

    def on_cancel_request(self) -> None:
        """The durable cancel (signal): applied if the email has not gone out, else noted."""
        self.state.cancel_requested_at = iso(workflow.now())
        if self.cancelled:
            return
        if self._cancellable():
            self.cancel()
        else:
            workflow.logger.info(
                "cancel request for %s not applied: it is %s", self.state.id, self.state.status
            )

    def stop(self) -> bool:
        """The workflow ends (an invite accepted, revoked, expired): cancel the email if it
        provably has not gone out (True); one that may have gone out and was not accepted
        ends `undetermined`, never reads as if nothing went out."""
        if self._cancellable():
            self.cancel()
            return True
        if self.state.status in CANCELLABLE or self.state.status == SendStatus.SENDING:
            self.cancelled = True
            self.set_status(SendStatus.UNDETERMINED)
            self.upsert_status()
            self._count(SendStatus.UNDETERMINED)
        return False

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
        self.state.updated_at = iso(workflow.now())
        workflow.logger.info("email %s rescheduled", self.state.id)
        return RescheduleResult(status=self.state.status, send_at=send_at)

    # Status, visibility, metrics.

    def set_status(self, status: SendStatus) -> None:
        self.state.status = status
        self.state.updated_at = iso(workflow.now())
        self._show()

    def _show(self) -> None:
        show_email(self.state, self._listening_until)

    def upsert_status(self, *, provider_message_id: str | None = None) -> None:
        # Only real status changes reach visibility: each upsert is a command and an event.
        if not self.visible:
            return
        updates = [EMAIL_STATUS.value_set(self.state.status)]
        if provider_message_id:
            updates.append(PROVIDER_MESSAGE_ID.value_set(provider_message_id))
        else:
            # `sending` is never written; nor is a status visibility already holds.
            current = workflow.info().typed_search_attributes.get(EMAIL_STATUS)
            if self.state.status in (SendStatus.SENDING, current):
                return
        workflow.upsert_search_attributes(updates)

    def _count(self, outcome: SendStatus) -> None:
        # `provider`: the one that sent it, else the one the last attempt reached ("" unknown).
        last = self.state.attempts[-1].provider if self.state.attempts else None
        provider = self.state.provider or last or ""
        self._metrics.create_counter("email_sends", "Emails by final send outcome", "{email}").add(
            1, {"outcome": outcome.value, "kind": self.state.kind.value, "provider": provider}
        )
