"""`BatchCall`: a batch's one provider call (up to 100 messages) and what follows it.

Resend's permissive validation sends the valid emails and refuses the others by index: a
refused item ends `failed` with the provider's reason while its siblings are `sent`, then
each moves with its own delivery events (routed by item id). The messages are pinned once
(the input, or the render's recorded result) and given to the first attempt only; later
attempts read them with the `pinned_batch` query and check their digest.

What a run carries into the next (`BatchCarry`) holds each message at most once: an email
batch's messages are in its input already and are not carried again; an invite batch's
rendered invitations are carried, its input holds only their small render inputs. So the
carried input stays within Temporal's payload limit for the largest batch the API accepts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import NoReturn

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.delivery_contract import SendKind, batch_idempotency_key, batch_sha256
    from activities.send import SendActivities
    from activities.suppressions import (
        CHECK_RETRY,
        CHECK_TIMEOUT,
        SuppressAddressesInput,
        SuppressionActivities,
        canonical_address,
    )
    from activities.types import BatchAttemptInput, BatchAttemptResult, EmailMessage
    from workflows.app_events.emit import AppEvents, app_event_data, forwarded, unsent_event
    from workflows.batch_types import (
        BatchCarry,
        BatchItemState,
        BatchStatusResult,
        SendBatchInput,
        refusal,
    )
    from workflows.delivery.attempts import accepted_record
    from workflows.delivery.events import (
        Dedupe,
        forwarded_only,
        keep_event,
        next_status,
        suppression_origin,
        tracked,
    )
    from workflows.delivery.history import handlers_done_then_log, iso
    from workflows.delivery.labels import show_batch
    from workflows.delivery.loop import SUPPRESSED, ProviderCall, attempt_options
    from workflows.search_attributes import EMAIL_STATUS
    from workflows.status import ENDING_DELIVERY_STATUSES, SendStatus
    from workflows.types import DeliveryEventInput, EmailError

SUPPRESSED_ITEM = SendStatus.SUPPRESSED
# The only provider call of a batch (the API takes at most as many items as one call carries).
CALL = 0


class BatchCall(ProviderCall[BatchAttemptResult]):
    """The call of one batch: its status, each item's, the pinned messages."""

    what = "batch"

    def __init__(
        self,
        data: SendBatchInput,
        *,
        call: int = CALL,
        continue_with: Callable[[], Awaitable[NoReturn]] | None = None,
    ) -> None:
        """`call`: which call of the workflow this is (its idempotency key); `continue_with`:
        for a workflow that holds more than this call (an invite batch's invitations and
        reminders), what a full history waits on instead of continuing as new itself."""
        carry = data.carry
        if carry is not None:
            self.state = carry.state
            self.state.runs += 1
        else:
            now = iso(workflow.now())
            self.state = BatchStatusResult(
                id=data.batch_id,
                kind=data.kind,
                status=SendStatus.QUEUED,
                created_at=now,
                updated_at=now,
                items=[BatchItemState(i.email_id, SendStatus.QUEUED, now) for i in data.items],
                tenant_id=data.tenant_id,
            )
        super().__init__(
            self.state,
            data.policy,
            accepted_at=data.accepted_at or iso(workflow.info().workflow_start_time),
            backoff_seconds=carry.backoff_seconds if carry else None,
            can_continue=True,
        )
        self._data = data
        self._call = call
        self._continue_with = continue_with
        self._index = {item.id: n for n, item in enumerate(self.state.items)}
        self._tracking_until = carry.tracking_until if carry else None
        self._dedupe = Dedupe(carry.seen if carry else None)
        self._reports_events = True
        self.messages: list[EmailMessage] | None = None
        self._all_messages: list[EmailMessage] = []
        self._metrics = workflow.metric_meter()
        self._app_events = AppEvents(self.state.tenant_id, self.state.id)
        # Items whose addresses this run put on the suppression list (or never will).
        self._listed: set[str] = set()

    @property
    def sent(self) -> bool:
        return self.state.sent_at is not None

    async def run(self, messages: list[EmailMessage]) -> None:
        """Send (unless a continued run already did), then track each item's delivery; it
        ends once each item's events are handed to the app's webhooks."""
        self._all_messages = messages
        self.messages = self._in_call(messages)
        try:
            if not self.sent and await self.send() is None:
                return
            await self._track()
        except (Exception, asyncio.CancelledError):
            await self._app_events.drained()  # an unsent end's events too
            raise
        await self._app_events.drained()

    @property
    def handing_over(self) -> bool:
        """Whether the items' app events are being handed over (see `Delivery`)."""
        return self._app_events.handing_over

    def _item_event(self, item: BatchItemState, event_type: str, **extra: object) -> None:
        """Hand an event about one item to the app's webhooks (the item's id)."""
        index = self._index[item.id]
        message = self._all_messages[index] if index < len(self._all_messages) else None
        data = app_event_data(self.state, message, dict(extra))
        self._app_events.emit(event_type, data, email_id=item.id)

    async def _suppress_refused_items(self) -> None:
        """A permanent bounce or a complaint puts an item's `to` addresses on the tenant's
        list, as for a single email (`SuppressionSteps.suppress_if_refused`)."""
        tenant_id = self.state.tenant_id
        if tenant_id is None:
            self._listed.update(item.id for item in self.state.items)
            return  # lists are per tenant
        for item, message in zip(self.state.items, self._all_messages, strict=True):
            origin = suppression_origin(item)
            if origin is None or item.id in self._listed:
                continue
            self._listed.add(item.id)
            try:
                await workflow.execute_local_activity_method(
                    SuppressionActivities.suppress_addresses,
                    SuppressAddressesInput(tenant_id, message.to, origin, item.id),
                    start_to_close_timeout=CHECK_TIMEOUT,
                    retry_policy=CHECK_RETRY,
                )
            except ActivityError:
                workflow.logger.warning("recipients of %s not suppressed: the list failed", item.id)

    def _in_call(self, messages: list[EmailMessage]) -> list[EmailMessage]:
        """The messages of the items the call carries: all but the suppressed ones."""
        items = self.state.items
        return [m for m, i in zip(messages, items, strict=True) if i.status != SUPPRESSED_ITEM]

    def _call_items(self) -> list[BatchItemState]:
        return [i for i in self.state.items if i.status != SUPPRESSED_ITEM]

    async def held_back(self) -> bool:
        """Items with a recipient on the tenant's suppression list end `suppressed` and
        leave the call; the call is held back only if none is left."""
        messages = self._all_messages
        recipients = [a for m in messages for a in (*m.to, *m.cc, *m.bcc)]
        found = await self.suppressed_among(self.state.tenant_id, recipients)
        if not found:
            return False
        now = iso(workflow.now())
        for message, item in zip(messages, self.state.items, strict=True):
            if any(canonical_address(a) in found for a in (*message.to, *message.cc, *message.bcc)):
                item.status, item.updated_at = SUPPRESSED_ITEM, now
                item.error = EmailError(SUPPRESSED, "a recipient is on the suppression list")
                self._item_event(item, "email.suppressed")
        self.messages = self._in_call(messages)
        if self.messages:
            return False
        self._set(SendStatus.SUPPRESSED, items_too=False)
        self.upsert_status()
        self._count_items()
        return True

    async def attempt(self, attempt: int, not_after: datetime, summary: str) -> BatchAttemptResult:
        assert self.messages is not None
        # The same key on every attempt, in every run of this workflow id.
        key = batch_idempotency_key(workflow.info().workflow_id, self._call)
        first = self.state.attempt_count == 0
        return await workflow.execute_activity_method(
            SendActivities.send_batch,
            # The messages in the first attempt only; later ones read the pinned ones.
            BatchAttemptInput(
                self.messages if first else None,
                key,
                attempt,
                messages_sha256=batch_sha256(self.messages),
                not_after=iso(not_after),
            ),
            **attempt_options(self.policy, not_after, summary),
        )

    def accepted(self, attempt: int, scheduled: datetime, result: BatchAttemptResult) -> None:
        record = accepted_record(attempt, scheduled, result.started_at, result.http_status)
        self.add_attempt(record, may_have_accepted=False)
        now = record.finished_at
        self.state.transport = result.transport
        self.state.sent_at = now
        self.state.last_error = None
        self._reports_events = result.reports_delivery_events
        for item, outcome in zip(self._call_items(), result.items, strict=True):
            item.updated_at = now
            if outcome.provider_message_id is not None:
                item.status = SendStatus.SENT
                item.provider_message_id = outcome.provider_message_id
                item.sent_at = now
            else:
                item.status = SendStatus.FAILED
                item.error = refusal(outcome.refusal or "refused by the provider")
            if item.status == SendStatus.SENT:
                self._item_event(item, "email.sent")
            else:
                reason = item.error.type if item.error else ""
                self._item_event(item, "email.failed", failed={"reason": reason})
        self._set(SendStatus.SENT, items_too=False)
        self.upsert_status()
        self._count_items()
        refused = self.counts().get(SendStatus.FAILED, 0)
        workflow.logger.info(
            "batch %s taken after %d attempt(s); %d of %d refused",
            self.state.id,
            attempt,
            refused,
            len(self.state.items),
        )

    def ended_unsent(self, status: SendStatus, error: EmailError) -> None:
        for item in self._call_items():
            item.error = error
            self._item_event(item, unsent_event(status), failed={"reason": error.type})
        self._set(status)
        self._count_items()

    async def continue_as_new(self) -> NoReturn:
        """Continue as new with what the batch needs (same workflow id, so same key)."""
        await self._app_events.drained()
        if self._continue_with is not None:
            await self._continue_with()
        await handlers_done_then_log("batch", self.state.id, self.state.attempt_count)
        workflow.continue_as_new(replace(self._data, carry=self.carry()))

    def carry(self, *, messages: bool = False) -> BatchCarry:
        """What the next run of this call needs (see the module docstring); `messages`:
        the rendered messages even once sent (a workflow whose input does not hold them)."""
        invites = self.state.kind == SendKind.INVITE and not self.sent
        return BatchCarry(
            state=self.state,
            # Each message once: an email batch's are in its input (see the docstring).
            messages=list(self._all_messages) if invites or messages else [],
            attempt=self.state.attempt_count,
            backoff_seconds=self.backoff_seconds(),
            deadline=self.state.not_after or "",
            tracking_until=self._tracking_until,
            seen=self._dedupe.carry(),
        )

    # Delivery events.

    def on_delivery_event(self, event: DeliveryEventInput) -> None:
        """A provider event for one item (by its id), counted once."""
        index = self._index.get(event.email_id or "")
        if index is None or not (tracked(event) or forwarded_only(event)):
            workflow.logger.info("ignored event %s for no item of this batch", event.type)
            return
        item = self.state.items[index]
        if not self._dedupe.first_time(item.id, event):
            return
        self._item_event(item, event.type, **forwarded(event))
        if not tracked(event):
            return
        keep_event(item.delivery_events, event)
        # A webhook can overtake the activity's completion: it is applied after the send.
        if self.sent and self._tracking_until is not None:
            self._apply(item, event.type)

    def _apply(self, item: BatchItemState, event_type: str) -> None:
        status = next_status(item.status, event_type)
        if status is not None:
            item.status = status
            item.updated_at = iso(workflow.now())

    def _every_item_ended(self) -> bool:
        return all(item.status in ENDING_DELIVERY_STATUSES for item in self.state.items)

    async def _track(self) -> None:
        """After the call: apply early events, then wait until every item has an ending,
        unless the transport reports no delivery events."""
        if self._tracking_until is None:
            for item in self.state.items:
                for record in list(item.delivery_events):
                    self._apply(item, record.type)
            if not self._reports_events:
                return
            wait = timedelta(seconds=self.policy.delivery_wait_seconds)
            self._tracking_until = iso(workflow.now() + wait)
        until = datetime.fromisoformat(self._tracking_until)
        while True:
            ended = await self.wait_for_events(
                until, lambda: self._every_item_ended() or self._refused_to_list()
            )
            await self._suppress_refused_items()
            if self._every_item_ended() or not ended:
                break
        if not self._every_item_ended():
            workflow.logger.info("no final event for every item of %s", self.state.id)

    def _refused_to_list(self) -> bool:
        """An item bounced for good or drew a complaint, and its addresses are not listed."""
        return any(
            item.id not in self._listed and suppression_origin(item) is not None
            for item in self.state.items
        )

    # Status, visibility, metrics.

    def set_status(self, status: SendStatus) -> None:
        self._set(status)

    def _set(self, status: SendStatus, *, items_too: bool = True) -> None:
        """The call's status; until the provider takes the call, every item's too."""
        now = iso(workflow.now())
        self.state.status = status
        self.state.updated_at = now
        if items_too:
            for item in self._call_items():
                item.status = status
                item.updated_at = now
        show_batch(status, self.state.attempt_count, self.counts(), self.state.last_error)

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for item in self.state.items:
            counts[item.status] = counts.get(item.status, 0) + 1
        return counts

    def upsert_status(self) -> None:
        current = workflow.info().typed_search_attributes.get(EMAIL_STATUS)
        if self.state.status in (SendStatus.SENDING, current):
            return
        workflow.upsert_search_attributes([EMAIL_STATUS.value_set(self.state.status)])

    def _count_items(self) -> None:
        counter = self._metrics.create_counter(
            "email_sends", "Emails by final send outcome", "{email}"
        )
        for status, n in self.counts().items():
            counter.add(n, {"outcome": status, "kind": self.state.kind.value})
