"""`SendInviteEmail`: one invitation's life, from its email to accept, expiry or revoke.

Registered under the name the product is known by (`SendInviteEmail`; the class is
`Invite`). An invite lives for days, so it is Auto-Upgrade: a running invite moves to the
current build on its next task, and a change to its commands made after 1.0 takes a
`workflow.patched` branch.

The life:
1. Render the invitation and the planned reminder once (a local activity: the recorded
   result pins their bytes; a template change later cannot alter them).
2. Send the invitation through the delivery engine (`Delivery`), concurrently with the
   rest, and keep applying its delivery events.
3. At `remind_at`, if not accepted and the invitation went out without bouncing, send the
   reminder once, with its own idempotency key (`invite-…/reminder`).
4. End at the first of: accept (update), revoke (update), expiry (a durable timer).
   Whatever is still being sent then is cancelled if it provably has not gone out.

Its times count from the workflow's start (the server's clock, which a reset keeps), not
from its first task: a reset must not give the invite a new life, nor a late first task a
longer one. A managed token is never here: the input holds its keyed digest and the
rendered emails a placeholder (see `activities.invite_tokens`); an accept carries the
digest of the token presented, compared in constant time. Wrong tokens are counted; past
`MAX_WRONG_TOKENS` a wrong one is refused without being recorded, while the right one
always accepts (whoever guesses cannot lock the invitee out). These checks live in
`workflows.invite_checks`, shared with every workflow that holds invites.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import NoReturn

from temporalio import workflow
from temporalio.common import RetryPolicy, VersioningBehavior
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.delivery_contract import (
        INVITATION,
        PINNED_MESSAGE_QUERY,
        REMINDER,
        SendKind,
        reminder_idempotency_key,
    )
    from activities.render import TEMPLATE_FAILED, RenderActivities
    from activities.types import EmailMessage
    from workflows.coalesce.handlers import CoalescedHandlers
    from workflows.delivery.changes import SettlesPatches
    from workflows.delivery.email import Delivery
    from workflows.delivery.endings import RESCHEDULE_REJECTED
    from workflows.delivery.handlers import pinned_of
    from workflows.delivery.history import settled
    from workflows.invite_checks import check_pending, check_scope, check_token, right_token
    from workflows.status import InviteStatus, SendStatus
    from workflows.types import (
        ACCEPT_UPDATE,
        CANCEL_REQUEST_SIGNAL,
        CANCEL_UPDATE,
        DELIVERY_EVENT_SIGNAL,
        INVITE_QUERY,
        RESCHEDULE_UPDATE,
        REVOKE_UPDATE,
        AcceptInput,
        AcceptResult,
        CancelInput,
        CancelResult,
        ContinuedDelivery,
        DeliveryEventInput,
        DeliveryPolicy,
        EmailStatusResult,
        InviteCarry,
        InviteInput,
        InviteState,
        RescheduleInput,
        RescheduleResult,
        RevokeInput,
        RevokeResult,
    )

RENDER_RETRY = RetryPolicy(
    maximum_attempts=5,
    initial_interval=timedelta(milliseconds=200),
    non_retryable_error_types=[TEMPLATE_FAILED],
)
# The invitation's states in which a reminder makes sense: it went out and did not bounce.
REMINDABLE = frozenset({SendStatus.SENT, SendStatus.DELIVERED, SendStatus.DELIVERY_DELAYED})


@dataclass
class _ReminderOptions:
    """The reminder's delivery options: the invite's policy and tenant, due at once."""

    policy: DeliveryPolicy
    tenant_id: str | None
    send_at: str | None = None


def _iso(moment: datetime) -> str:
    return moment.isoformat()


@workflow.defn(name=InviteInput.WORKFLOW, versioning_behavior=VersioningBehavior.AUTO_UPGRADE)
class Invite(CoalescedHandlers, SettlesPatches):
    """One invite: its emails, and the accept, revoke and expiry that end it."""

    @workflow.init
    def __init__(self, data: InviteInput) -> None:
        self.settle_at_start()
        self._data = data
        carried = data.continued
        if carried is None:
            # From the workflow's start, not this first task (see the module docstring).
            now = workflow.info().workflow_start_time
            expires_at = now + timedelta(seconds=data.expires_in_seconds)
            remind_at = (
                now + timedelta(seconds=data.remind_after_seconds)
                if data.remind_after_seconds is not None
                else None
            )
            self._state = InviteState(
                invite_id=data.invite_id,
                status=InviteStatus.PENDING,
                to=data.to,
                link="managed" if data.token_digest is not None else "app",
                locale=data.locale,
                created_at=_iso(now),
                expires_at=_iso(expires_at),
                tenant_id=data.tenant_id,
                role=data.role,
                remind_at=_iso(remind_at) if remind_at else None,
            )
            # The reminder is due `remind_after_seconds` after the start (which a reset
            # keeps): its send window counts from then.
            reminder_due = now + timedelta(seconds=data.remind_after_seconds or 0)
        else:
            self._state = carried.state
            reminder_due = datetime.fromisoformat(
                carried.state.remind_at or carried.state.created_at
            )
        self._expires_at = datetime.fromisoformat(self._state.expires_at)
        self._remind_at = (
            datetime.fromisoformat(self._state.remind_at) if self._state.remind_at else None
        )
        self._email = Delivery(
            data.invite_id,
            SendKind.INVITE,
            data,
            continued=carried.email if carried else None,
            continue_as_new=self._park,
        )
        self._reminder = Delivery(
            data.invite_id,
            SendKind.INVITE,
            _ReminderOptions(data.policy, data.tenant_id),
            idempotency_key=reminder_idempotency_key(workflow.info().workflow_id),
            visible=False,
            accepted_at=_iso(reminder_due),
            continued=carried.reminder_email if carried else None,
            continue_as_new=self._park,
        )
        self._reminder_started = carried.reminder_started if carried else False
        self._sends: dict[str, tuple[Delivery, asyncio.Task[None]]] = {}
        self._parked: set[str] = set()
        self._invitation: EmailMessage | None = carried.invitation if carried else None
        self._reminder_message: EmailMessage | None = carried.reminder if carried else None

    @workflow.run
    async def run(self, data: InviteInput) -> InviteState:
        carried = data.continued
        if carried is None:
            rendered = await workflow.execute_local_activity_method(
                RenderActivities.render_invite_emails,
                data.render_input(self._state.expires_at),
                start_to_close_timeout=timedelta(seconds=10),
                retry_policy=RENDER_RETRY,
            )
            self._invitation, self._reminder_message = rendered.invitation, rendered.reminder
        assert self._invitation is not None
        if self._pending and not (carried and carried.email_done):
            self._start(INVITATION, self._email, self._invitation)
        if self._remind_at is not None and self._reminder_message is not None:
            if self._reminder_started:
                # A run that continued as new after the reminder was started.
                if carried and not carried.reminder_done:
                    self._start(REMINDER, self._reminder, self._reminder_message)
            elif self._state.reminder_skipped is None:
                if not await self._ended_before(self._remind_at):
                    self._remind(self._reminder_message)
        if not await self._ended_before(self._expires_at):
            self._end(InviteStatus.EXPIRED)
            workflow.logger.info("invite %s expired", data.invite_id)
        await self._stop_sends()
        await settled(self._email, self._reminder)
        return self._snapshot()

    @property
    def _pending(self) -> bool:
        return self._state.status == InviteStatus.PENDING

    async def _ended_before(self, moment: datetime) -> bool:
        """Wait (one durable timer) until `moment`; True if the invite ended first. The
        invite continues as new from here when its history is full (`_ready_to_continue`)."""
        delay = moment - workflow.now()
        if not self._pending or delay <= timedelta(0):
            return not self._pending
        try:
            await workflow.wait_condition(
                lambda: not self._pending or self._ready_to_continue(), timeout=delay
            )
        except asyncio.TimeoutError:  # noqa: UP041 (asyncio's, raised by wait_condition)
            return False
        if self._pending:
            await self._continue_as_new()
        return True

    def _ready_to_continue(self) -> bool:
        """The run's history is full and no send is mid-attempt: every running send waits
        in `_park` (or none runs and events filled the history)."""
        running = [name for name, (_, task) in self._sends.items() if not task.done()]
        if running:
            return all(name in self._parked for name in running)
        return self._email.history_full()

    async def _park(self, accepted_at: str, carried: ContinuedDelivery) -> NoReturn:
        """A send whose run is full waits here until the invite continues as new with it."""
        name = INVITATION if carried.state is self._email.state else REMINDER
        self._parked.add(name)
        await workflow.wait_condition(lambda: False)
        raise AssertionError("unreachable: the invite continued as new")

    async def _continue_as_new(self) -> NoReturn:
        """Continue as new (bounded history) with the invite, its rendered emails and each
        send's carry; the workflow id, hence each email's idempotency key, stays."""
        await workflow.wait_condition(workflow.all_handlers_finished)
        assert self._invitation is not None
        email = self._sends.get(INVITATION)
        reminder = self._sends.get(REMINDER)
        carried = InviteCarry(
            state=self._state,
            invitation=self._invitation,
            reminder=self._reminder_message,
            email=self._email.carry() if email else None,
            email_done=bool(email and email[1].done()),
            reminder_started=self._reminder_started,
            reminder_email=self._reminder.carry() if reminder else None,
            reminder_done=bool(reminder and reminder[1].done()),
        )
        workflow.logger.info("invite %s continues as new", self._data.invite_id)
        workflow.continue_as_new(replace(self._data, continued=carried))

    def _start(self, name: str, delivery: Delivery, message: EmailMessage) -> None:
        async def send() -> None:
            try:
                if delivery.message is None:
                    delivery.message = message
                await delivery.run()
            except ApplicationError as err:
                # The send ended unaccepted; its status says why. The invite lives on
                # (the app may revoke it and invite again).
                workflow.logger.warning(
                    "invite %s: email not sent (%s)", self._data.invite_id, err.type
                )

        self._sends[name] = (delivery, asyncio.create_task(send()))

    def _remind(self, message: EmailMessage) -> None:
        invitation = self._email.state.status
        if invitation not in REMINDABLE:
            self._state.reminder_skipped = f"the invitation is {invitation}"
            return
        self._reminder_started = True
        self._start(REMINDER, self._reminder, message)

    def _end(self, status: InviteStatus) -> None:
        now = _iso(workflow.now())
        self._state.status = status
        if status == InviteStatus.ACCEPTED:
            self._state.accepted_at = now
        elif status == InviteStatus.REVOKED:
            self._state.revoked_at = now
        elif status == InviteStatus.EXPIRED:
            self._state.expired_at = now

    async def _stop_sends(self) -> None:
        """The invite has ended: what has not gone out is cancelled, tracking stops."""
        self._cancel_unsent()
        tasks = [task for _, task in self._sends.values()]
        for task in tasks:
            if not task.done():
                task.cancel()
        for task in tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass

    def _cancel_unsent(self) -> bool:
        """Stop the emails still being sent: cancelled if they provably have not gone out,
        else `undetermined` (see `Delivery.stop`); True if one was cancelled."""
        deliveries = [self._email, self._reminder] if self._reminder_started else [self._email]
        cancelled = False
        for delivery in deliveries:
            if delivery.state.status != SendStatus.CANCELLED:
                cancelled = delivery.stop() or cancelled
        return cancelled

    def _snapshot(self) -> InviteState:
        return replace(
            self._state,
            invitation=self._email.state,
            reminder=self._reminder.state if self._reminder_started else None,
        )

    # Checks shared by the update validators (a rejection is not recorded in history).

    def _check_scope(self, tenant_id: str | None) -> None:
        check_scope(self._data.tenant_id, tenant_id)

    def _check_pending(self) -> None:
        check_pending(self._state.status, self._pending and workflow.now() >= self._expires_at)

    def _coalesced(self) -> list[Delivery]:
        return [self._email, self._reminder]

    @workflow.query(name=INVITE_QUERY)
    def invite(self) -> InviteState:
        """The invite: status, timestamps, and the status of each of its emails."""
        return self._snapshot()

    @workflow.query(name="status")
    def status(self) -> EmailStatusResult:
        """The invitation email's status (what `GET /v1/emails/{id}` shows)."""
        return self._email.state

    @workflow.query(name=PINNED_MESSAGE_QUERY)
    def pinned_message(self, digest: str | None = None) -> EmailMessage:
        """The email the send activity asks for by its digest: the invitation or the reminder
        (attempts carry the digest, not the message: see `workflows.delivery`)."""
        return pinned_of([self._email, self._reminder], digest)

    @workflow.signal(name=CANCEL_REQUEST_SIGNAL)
    def cancel_request(self, data: CancelInput) -> None:
        """The API's cancel when no worker answered `cancel` at once: applied as `cancel` is,
        if the invitation has not gone out by now (else only noted in its status)."""
        self._email.on_cancel_request()
        if self._email.state.status == SendStatus.CANCELLED and self._pending:
            self._end(InviteStatus.REVOKED)

    @workflow.signal(name=DELIVERY_EVENT_SIGNAL)
    def delivery_event(self, event: DeliveryEventInput) -> None:
        """A provider webhook event for the invitation or, by its `message` tag, the reminder."""
        (self._reminder if event.message == REMINDER else self._email).on_delivery_event(event)

    @workflow.update(name=ACCEPT_UPDATE)
    def accept(self, data: AcceptInput) -> AcceptResult:
        """Accept the invite once, with its token (managed) or without (the app's link)."""
        if not self._right_token(data):
            self._state.wrong_tokens += 1
            workflow.logger.info("invite %s: wrong token", self._data.invite_id)
            return AcceptResult(accepted=False, invite=self._snapshot())
        self._end(InviteStatus.ACCEPTED)
        workflow.logger.info("invite %s accepted", self._data.invite_id)
        return AcceptResult(accepted=True, invite=self._snapshot())

    @accept.validator
    def validate_accept(self, data: AcceptInput) -> None:
        self._check_scope(data.tenant_id)
        self._check_pending()
        check_token(self._data.token_digest, data.token_digest, self._state.wrong_tokens)

    def _right_token(self, data: AcceptInput) -> bool:
        return right_token(self._data.token_digest, data.token_digest)

    @workflow.update(name=REVOKE_UPDATE)
    def revoke(self, data: RevokeInput) -> RevokeResult:
        """Revoke the invite; an email that has not gone out is cancelled."""
        cancelled = self._cancel_unsent()
        self._end(InviteStatus.REVOKED)
        workflow.logger.info("invite %s revoked", self._data.invite_id)
        return RevokeResult(invite=self._snapshot(), email_cancelled=cancelled)

    @revoke.validator
    def validate_revoke(self, data: RevokeInput) -> None:
        self._check_scope(data.tenant_id)
        self._check_pending()

    @workflow.update(name=CANCEL_UPDATE)
    def cancel(self, data: CancelInput) -> CancelResult:
        """`DELETE /v1/emails/{id}`: cancel the invitation before it goes out, which revokes
        the invite (nobody could accept it)."""
        result = self._email.cancel()
        if self._pending:
            self._end(InviteStatus.REVOKED)
        return result

    @cancel.validator
    def validate_cancel(self, data: CancelInput) -> None:
        self._email.check_cancellable()

    @workflow.update(name=RESCHEDULE_UPDATE)
    def reschedule(self, data: RescheduleInput) -> RescheduleResult:
        """Move the invitation's `send_at` while it waits (Resend-compatible `PATCH`)."""
        return self._email.reschedule(data.send_at)

    @reschedule.validator
    def validate_reschedule(self, data: RescheduleInput) -> None:
        self._email.check_reschedulable(data.send_at)
        if self._pending and datetime.fromisoformat(data.send_at) >= self._expires_at:
            raise ApplicationError(
                "send_at must come before the invite expires", type=RESCHEDULE_REJECTED
            )
