"""`SendInviteBatch`: up to 100 invites created by one request, each living as a single
invite does (`workflows.invite`), their emails going out together.

One workflow start per request keeps `POST /v1/invites/batch` at its rate (a start per
invite would cap it at the rate of single invites). Its life:

1. Render the invitations once (a local activity: the recorded result pins their bytes)
   and send them in ONE provider call through the one delivery loop (`BatchCall`, key
   `batch-…/send/0`): single-try attempts, backoff, honest endings, delivery events per
   item.
2. At `remind_at`, ONE more call (key `…/send/1`) carries the reminders of the invites
   still pending whose invitation went out and did not bounce; the others record why not.
3. Each invite ends at its accept or revoke (updates naming the item), or at the batch's
   expiry (one durable timer: the items share their creation). The batch ends when no
   invite is pending; what is still being tracked then stops.

Tokens: the input holds each item's token reference and keyed digest; the rendered emails
hold `PLACEHOLDER`, filled at the provider call (`TokenFillingTransport`), so no token is
in history. The accept and revoke checks are the single invite's (`workflows.invite_checks`):
same refusals, same error types, same lockout. Times count from the workflow's start (the
server's clock, which a reset keeps). Auto-Upgrade, as invites live for days: a change of
its commands takes a `changed(...)` branch (`workflows.delivery.changes`).

History stays bounded: when a run's history is full, every call still running parks at its
next step and the batch continues as new with each invite's state and each call's carry.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import datetime, timedelta
from typing import NoReturn

from temporalio import workflow
from temporalio.common import VersioningBehavior
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.delivery_contract import (
        INVITATION,
        PINNED_BATCH_QUERY,
        REMINDER,
        SendKind,
        batch_sha256,
    )
    from activities.render import RenderActivities
    from activities.types import (
        EmailMessage,
        RenderInviteBatchEmailsInput,
        RenderInviteEmailsInput,
        invitation_of,
    )
    from workflows.batch_types import (
        BATCH_STATUS_QUERY,
        BatchCarry,
        BatchStatusResult,
        SendBatchInput,
        item_status,
    )
    from workflows.delivery.batch import BatchCall
    from workflows.delivery.handlers import NO_PINNED_MESSAGE
    from workflows.delivery.history import history_full, iso, settled
    from workflows.invite import REMINDABLE, RENDER_RETRY
    from workflows.invite_batch_types import (
        INVITATIONS_CALL,
        INVITE_ITEM_QUERY,
        REMINDERS_CALL,
        InviteBatchInput,
        InviteBatchLife,
        InviteBatchResult,
        batch_result,
    )
    from workflows.invite_checks import check_pending, check_scope, check_token, right_token
    from workflows.status import InviteStatus
    from workflows.types import (
        ACCEPT_UPDATE,
        DELIVERY_EVENT_SIGNAL,
        INVITE_NOT_FOUND,
        REVOKE_UPDATE,
        AcceptInput,
        AcceptResult,
        DeliveryEventInput,
        InviteState,
        RevokeInput,
        RevokeResult,
    )

NO_SUCH_INVITE = "no invite with this id"


@workflow.defn(name=InviteBatchInput.WORKFLOW, versioning_behavior=VersioningBehavior.AUTO_UPGRADE)
class InviteBatch:
    """A batch's invites: their two calls (invitations, reminders) and each invite's life."""

    @workflow.init
    def __init__(self, data: InviteBatchInput) -> None:
        self._data = data
        life = data.life
        self._invites = life.invites if life is not None else self._new_invites(data)
        first = self._invites[0]
        self._expires_at = datetime.fromisoformat(first.expires_at)
        self._remind_at = datetime.fromisoformat(first.remind_at) if first.remind_at else None
        # The send window counts from the start (the server's clock), as the invites' times.
        self._invitations = BatchCall(
            replace(data, accepted_at=first.created_at),
            call=INVITATIONS_CALL,
            continue_with=lambda: self._park(INVITATION),
        )
        self._reminder_started = life.reminder_started if life is not None else False
        self._reminder_items = list(life.reminder_items) if life is not None else []
        self._reminders: BatchCall | None = None
        if life is not None and life.reminders is not None:
            self._reminders = self._reminder_call(life.reminders)
        self._tasks: dict[str, tuple[BatchCall, asyncio.Task[None]]] = {}
        self._parked: set[str] = set()

    @staticmethod
    def _new_invites(data: InviteBatchInput) -> list[InviteState]:
        """Every item's invite, pending, its times from the workflow's start."""
        now = workflow.info().workflow_start_time
        expires_at = iso(now + timedelta(seconds=data.expires_in_seconds))
        remind = data.remind_after_seconds
        remind_at = iso(now + timedelta(seconds=remind)) if remind is not None else None
        invites = []
        for item in data.items:
            if item.invite is None:
                raise ApplicationError("an invite batch item has no invitation", type="BadInput")
            invites.append(
                InviteState(
                    invite_id=item.email_id,
                    status=InviteStatus.PENDING,
                    to=item.invite.to,
                    link="managed",
                    locale=data.locale,
                    created_at=iso(now),
                    expires_at=expires_at,
                    tenant_id=data.tenant_id,
                    role=item.invite.role,
                    remind_at=remind_at,
                )
            )
        return invites

    def _reminder_call(self, carry: BatchCarry | None) -> BatchCall:
        """The reminders' call: the items it carries, due at `remind_at` (its send window
        counts from then)."""
        data = self._data
        assert self._remind_at is not None
        reminders = SendBatchInput(
            batch_id=data.batch_id,
            kind=SendKind.INVITE,
            items=[data.items[i] for i in self._reminder_items],
            tenant_id=data.tenant_id,
            policy=data.policy,
            carry=carry,
            accepted_at=iso(self._remind_at),
        )
        return BatchCall(reminders, call=REMINDERS_CALL, continue_with=lambda: self._park(REMINDER))

    @workflow.run
    async def run(self, data: InviteBatchInput) -> InviteBatchResult:
        life = data.life
        if life is None or not life.invitations_done:
            carried = data.carry.messages if data.carry is not None else None
            self._start(INVITATION, self._invitations, carried or await self._render(INVITATION))
        if self._remind_at is not None and not self._reminder_started:
            if not await self._ended_before(self._remind_at):
                await self._remind()
        elif self._reminders is not None and life is not None and not life.reminders_done:
            assert life.reminders is not None
            self._start(REMINDER, self._reminders, life.reminders.messages)
        if not await self._ended_before(self._expires_at):
            self._expire()
        await self._stop_calls()
        await settled(*(c for c in (self._invitations, self._reminders) if c is not None))
        return batch_result(self._invitations.state, self._snapshots())

    # The calls.

    async def _render(self, variant: str, items: list[int] | None = None) -> list[EmailMessage]:
        """The invitations (or the reminders of `items`), rendered once."""
        data = self._data
        indexes = items if items is not None else list(range(len(data.items)))
        rendered = await workflow.execute_local_activity_method(
            RenderActivities.render_invite_batch_emails,
            RenderInviteBatchEmailsInput([self._render_input(i) for i in indexes], variant),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RENDER_RETRY,
        )
        return rendered.messages

    def _render_input(self, index: int) -> RenderInviteEmailsInput:
        data = self._data
        invite = data.items[index].invite
        assert invite is not None
        return RenderInviteEmailsInput(
            **invitation_of(invite),
            locale=data.locale,
            brand=data.brand,
            expires_at=self._invites[index].expires_at,
            with_reminder=False,
            invite_token=data.tokens[index] if index < len(data.tokens) else None,
        )

    def _start(self, name: str, call: BatchCall, messages: list[EmailMessage]) -> None:
        async def send() -> None:
            try:
                await call.run(messages)
            except ApplicationError as err:
                # Each item's status says why; the invites live on (revoke, invite again).
                workflow.logger.warning(
                    "invite batch %s: %s not sent (%s)", self._data.batch_id, name, err.type
                )

        self._tasks[name] = (call, asyncio.create_task(send()))

    async def _remind(self) -> None:
        """One call of the reminders of the pending invites whose invitation went out and
        did not bounce; the others note why they get none."""
        self._reminder_started = True
        invitations = self._invitations.state.items
        chosen = []
        for index, invite in enumerate(self._invites):
            if invite.status != InviteStatus.PENDING:
                continue
            if invitations[index].status in REMINDABLE:
                chosen.append(index)
            else:
                invite.reminder_skipped = f"the invitation is {invitations[index].status}"
        if not chosen:
            return
        self._reminder_items = chosen
        messages = await self._render(REMINDER, chosen)
        self._reminders = self._reminder_call(None)
        self._start(REMINDER, self._reminders, messages)

    async def _stop_calls(self) -> None:
        """No invite is pending: tracking stops; a call not made yet ends on its own (its
        send window), since its emails may be out."""
        for name, (call, task) in list(self._tasks.items()):
            if call.sent and not task.done():
                task.cancel()
            await workflow.wait_condition(lambda t=task, n=name: t.done() or n in self._parked)  # type: ignore[misc]
            if not task.done():
                await self._continue_as_new()
            try:
                await task
            except asyncio.CancelledError:
                pass

    # Life and history.

    @property
    def _pending(self) -> bool:
        return any(invite.status == InviteStatus.PENDING for invite in self._invites)

    async def _ended_before(self, moment: datetime) -> bool:
        """Wait (one durable timer) until `moment`; True if no invite is pending by then.
        Continues as new from here when the run's history is full."""
        while self._pending and workflow.now() < moment:
            try:
                await workflow.wait_condition(
                    lambda: not self._pending or self._ready_to_continue(),
                    timeout=moment - workflow.now(),
                )
            except asyncio.TimeoutError:  # noqa: UP041 (asyncio's, raised by wait_condition)
                return not self._pending
            if self._pending:
                await self._continue_as_new()
        return not self._pending

    def _ready_to_continue(self) -> bool:
        running = [name for name, (_, task) in self._tasks.items() if not task.done()]
        if running:
            return all(name in self._parked for name in running)
        return history_full()

    async def _park(self, name: str) -> NoReturn:
        """A call whose run is full waits here until the batch continues as new with it."""
        self._parked.add(name)
        await workflow.wait_condition(lambda: False)
        raise AssertionError("unreachable: the batch continued as new")

    async def _continue_as_new(self) -> NoReturn:
        await workflow.wait_condition(workflow.all_handlers_finished)
        invitations = self._tasks.get(INVITATION)
        reminders = self._tasks.get(REMINDER)
        life = InviteBatchLife(
            invites=self._invites,
            invitations_done=invitations is None or invitations[1].done(),
            reminder_started=self._reminder_started,
            reminder_items=self._reminder_items,
            reminders=self._reminders.carry(messages=True) if self._reminders is not None else None,
            reminders_done=reminders is None or reminders[1].done(),
        )
        workflow.logger.info("invite batch %s continues as new", self._data.batch_id)
        carry = self._invitations.carry(messages=True)
        workflow.continue_as_new(replace(self._data, carry=carry, life=life))

    def _expire(self) -> None:
        now = iso(workflow.now())
        for invite in self._invites:
            if invite.status == InviteStatus.PENDING:
                invite.status, invite.expired_at = InviteStatus.EXPIRED, now
        workflow.logger.info("invite batch %s expired", self._data.batch_id)

    # One invite.

    def _snapshot(self, index: int) -> InviteState:
        reminder = None
        if self._reminders is not None and index in self._reminder_items:
            reminder = item_status(self._reminders.state, self._reminder_items.index(index))
        return replace(
            self._invites[index],
            invitation=item_status(self._invitations.state, index),
            reminder=reminder,
        )

    def _snapshots(self) -> list[InviteState]:
        return [self._snapshot(index) for index in range(len(self._invites))]

    def _item(self, item: int | None, tenant_id: str | None) -> InviteState:
        """The invite at `item`, if the caller's tenant holds it (else: no such invite)."""
        check_scope(self._data.tenant_id, tenant_id)
        if item is None or not 0 <= item < len(self._invites):
            raise ApplicationError(NO_SUCH_INVITE, type=INVITE_NOT_FOUND)
        invite = self._invites[item]
        due = invite.status == InviteStatus.PENDING and workflow.now() >= self._expires_at
        check_pending(invite.status, due)
        return invite

    @workflow.query(name=INVITE_ITEM_QUERY)
    def invite_item(self, item: int) -> InviteState:
        """One invite: status, times, and its emails' status."""
        if not 0 <= item < len(self._invites):
            raise ApplicationError(NO_SUCH_INVITE, type=INVITE_NOT_FOUND)
        return self._snapshot(item)

    @workflow.query(name=BATCH_STATUS_QUERY)
    def status(self) -> BatchStatusResult:
        """The invitations' call and each item's email (what a batch's readers show)."""
        return self._invitations.state

    @workflow.query(name=PINNED_BATCH_QUERY)
    def pinned_batch(self, digest: str) -> list[EmailMessage]:
        """The messages of the call whose digest this is, for the send activity."""
        for call in (self._invitations, self._reminders):
            pinned = call.messages if call is not None else None
            if pinned is not None and batch_sha256(pinned) == digest:
                return pinned
        raise ApplicationError("no such batch is pinned here", type=NO_PINNED_MESSAGE)

    @workflow.signal(name=DELIVERY_EVENT_SIGNAL)
    def delivery_event(self, event: DeliveryEventInput) -> None:
        """A provider event for one item's invitation or, by its `message` tag, reminder."""
        if event.message == REMINDER:
            if self._reminders is not None:
                self._reminders.on_delivery_event(event)
            return
        self._invitations.on_delivery_event(event)

    @workflow.update(name=ACCEPT_UPDATE)
    def accept(self, data: AcceptInput) -> AcceptResult:
        """Accept one invite once, with its token."""
        assert data.item is not None  # the validator's
        invite = self._invites[data.item]
        if not right_token(self._digest(data.item), data.token_digest):
            invite.wrong_tokens += 1
            workflow.logger.info("invite %s: wrong token", invite.invite_id)
            return AcceptResult(accepted=False, invite=self._snapshot(data.item))
        invite.status, invite.accepted_at = InviteStatus.ACCEPTED, iso(workflow.now())
        workflow.logger.info("invite %s accepted", invite.invite_id)
        return AcceptResult(accepted=True, invite=self._snapshot(data.item))

    @accept.validator
    def validate_accept(self, data: AcceptInput) -> None:
        invite = self._item(data.item, data.tenant_id)
        assert data.item is not None
        check_token(self._digest(data.item), data.token_digest, invite.wrong_tokens)

    def _digest(self, item: int) -> str | None:
        digests = self._data.token_digests
        return digests[item] if item < len(digests) else None

    @workflow.update(name=REVOKE_UPDATE)
    def revoke(self, data: RevokeInput) -> RevokeResult:
        """Revoke one invite: its link no longer accepts. Its email shares a call that may
        be out, so it is not cancelled (`email_cancelled` False)."""
        assert data.item is not None  # the validator's
        invite = self._invites[data.item]
        invite.status, invite.revoked_at = InviteStatus.REVOKED, iso(workflow.now())
        workflow.logger.info("invite %s revoked", invite.invite_id)
        return RevokeResult(invite=self._snapshot(data.item), email_cancelled=False)

    @revoke.validator
    def validate_revoke(self, data: RevokeInput) -> None:
        self._item(data.item, data.tenant_id)
