"""`SendBatch`: up to 100 emails (or invitations) in one provider call, each item tracked.

One start records every item once (the input); invitations are rendered once, by a local
activity whose recorded result pins the bytes. The call follows the single send's discipline
(`workflows/delivery.py`): one single-try activity per attempt, the workflow's own backoff
within the send window, and one idempotency key (`batch-…/send/0`) with the same bytes on
every attempt, so a retry after a timeout is answered from the provider's first answer
instead of sending twice.

Resend's permissive validation sends the valid emails and refuses the others by index: a
refused item ends `failed` with the provider's reason while its siblings are `sent`, then
each moves with its own delivery webhooks (the `delivery_event` signal, routed by item id).

Every attempt records the batch's messages again in history (up to the API's request size):
a long retry series continues as new when Temporal suggests it, carrying the messages and
the status so far.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.delivery_contract import SendKind, batch_idempotency_key
    from activities.render_batch import render_invite_batch
    from activities.send import SendActivities
    from activities.transports.outbox import OutboxTransport
    from activities.types import (
        BatchAttemptInput,
        BatchAttemptResult,
        EmailMessage,
        RenderInviteBatchInput,
    )
    from workflows.batch_types import (
        BATCH_STATUS_QUERY,
        BatchCarry,
        BatchItemState,
        BatchStatusResult,
        SendBatchInput,
        refusal,
    )
    from workflows.delivery import (
        SEND_FAILED,
        SINGLE_ATTEMPT,
        Delivery,
        _iso,
        _wait_until,
        task_priority,
    )
    from workflows.search_attributes import EMAIL_STATUS
    from workflows.status import (
        DELIVERY_EVENT_STATUS,
        ENDING_DELIVERY_STATUSES,
        FINAL_DELIVERY_STATUSES,
        SendStatus,
    )
    from workflows.types import (
        DELIVERY_EVENT_SIGNAL,
        AttemptRecord,
        DeliveryEventInput,
        DeliveryEventRecord,
        EmailError,
    )

RENDER_RETRY = RetryPolicy(maximum_attempts=3, initial_interval=timedelta(milliseconds=200))
# The only provider call of a batch (the API takes at most as many items as one call carries).
CALL = 0
BAD_INPUT = "BatchInputInvalid"


@workflow.defn(name="SendBatch")
class SendBatch:
    """Send a batch's items in one provider call, then track each item's delivery."""

    @workflow.init
    def __init__(self, data: SendBatchInput) -> None:
        if data.carry is not None:
            self._state = data.carry.state
        else:
            now = _iso(workflow.now())
            self._state = BatchStatusResult(
                id=data.batch_id,
                kind=data.kind,
                status=SendStatus.QUEUED,
                created_at=now,
                updated_at=now,
                items=[BatchItemState(i.email_id, SendStatus.QUEUED, now) for i in data.items],
                tenant_id=data.tenant_id,
            )
        self._index = {item.id: n for n, item in enumerate(self._state.items)}
        self._sent = False
        self._pending: list[tuple[int, DeliveryEventRecord]] = []
        self._metrics = workflow.metric_meter()

    @workflow.run
    async def run(self, data: SendBatchInput) -> BatchStatusResult:
        messages = data.carry.messages if data.carry else await self._messages(data)
        await self._send(data, messages)
        await self._track(timedelta(seconds=data.policy.delivery_wait_seconds))
        return self._state

    @workflow.query(name=BATCH_STATUS_QUERY)
    def status(self) -> BatchStatusResult:
        """Where the batch's call and each of its items stand."""
        return self._state

    @workflow.signal(name=DELIVERY_EVENT_SIGNAL)
    def delivery_event(self, event: DeliveryEventInput) -> None:
        """A provider webhook event for one item (by its id), deduplicated by event id."""
        index = self._index.get(event.email_id or "")
        if index is None or event.type not in DELIVERY_EVENT_STATUS:
            workflow.logger.info("ignored event %s for no item of this batch", event.type)
            return
        item = self._state.items[index]
        if any(seen.event_id == event.event_id for seen in item.delivery_events):
            return
        record = DeliveryEventRecord(
            event_id=event.event_id,
            type=event.type,
            received_at=_iso(workflow.now()),
            occurred_at=event.occurred_at,
            detail=event.detail,
        )
        item.delivery_events.append(record)
        self._metrics.create_counter(
            "email_delivery_events", "Provider delivery events by type", "{event}"
        ).add(1, {"type": event.type})
        if self._sent:
            self._apply(item, record)
        else:
            # A webhook can overtake the activity's completion: apply it after the send.
            self._pending.append((index, record))

    async def _messages(self, data: SendBatchInput) -> list[EmailMessage]:
        """The emails exactly as every attempt sends them: composed, or rendered once."""
        if data.kind == SendKind.INVITE:
            invites = [item.invite for item in data.items if item.invite is not None]
            if len(invites) != len(data.items):
                raise ApplicationError("an invite batch item has no invitation", type=BAD_INPUT)
            rendered = await workflow.execute_local_activity(
                render_invite_batch,
                RenderInviteBatchInput(invites),
                start_to_close_timeout=timedelta(seconds=10),
                retry_policy=RENDER_RETRY,
            )
            return rendered.messages
        messages = [item.message for item in data.items if item.message is not None]
        if len(messages) != len(data.items):
            raise ApplicationError("an email batch item has no message", type=BAD_INPUT)
        return messages

    async def _send(self, data: SendBatchInput, messages: list[EmailMessage]) -> None:
        """Call until the provider takes it, a permanent error, or the end of the window."""
        policy, carry = data.policy, data.carry
        # The same key on every attempt, in every run of this workflow id.
        key = batch_idempotency_key(workflow.info().workflow_id, CALL)
        if carry is not None:
            attempt, deadline = carry.attempt, datetime.fromisoformat(carry.deadline)
            backoff = timedelta(seconds=carry.backoff_seconds)
        else:
            attempt, deadline = 0, workflow.now() + timedelta(seconds=policy.window_seconds)
            backoff = timedelta(seconds=policy.initial_backoff_seconds)
        while True:
            attempt += 1
            self._set_status(SendStatus.SENDING)
            scheduled = workflow.now()
            try:
                result = await workflow.execute_activity_method(
                    SendActivities.send_batch,
                    BatchAttemptInput(messages=messages, idempotency_key=key, attempt=attempt),
                    task_queue=policy.send_task_queue,
                    start_to_close_timeout=timedelta(seconds=policy.attempt_timeout_seconds),
                    # Never after the window: past it the provider's 24 h idempotency window
                    # could no longer deduplicate a late attempt.
                    schedule_to_close_timeout=deadline - scheduled,
                    retry_policy=SINGLE_ATTEMPT,
                    priority=task_priority(policy),
                )
            except ActivityError as err:
                record, permanent, retry_after = Delivery.failed_attempt(attempt, scheduled, err)
                self._state.attempts.append(record)
                error = EmailError(record.error_type or "", record.error_message or "")
                self._state.last_error = error
                delay = retry_after if retry_after is not None else backoff
                if permanent or workflow.now() + delay >= deadline:
                    if not permanent:
                        error.message += " (send window exhausted)"
                    self._fail(error)
                    raise ApplicationError(
                        f"batch not delivered: {error.message}",
                        self._state,
                        type=SEND_FAILED,
                        non_retryable=True,
                    ) from None
                record.retry_in_seconds = delay.total_seconds()
                self._set_status(SendStatus.RETRYING)
                await workflow.sleep(delay)
                backoff = min(backoff * 2, timedelta(seconds=policy.max_backoff_seconds))
                if workflow.info().is_continue_as_new_suggested():
                    carried = BatchCarry(
                        self._state, messages, attempt, backoff.total_seconds(), _iso(deadline)
                    )
                    workflow.continue_as_new(replace(data, carry=carried))
                continue
            self._accepted(attempt, scheduled, result)
            return

    def _accepted(self, attempt: int, scheduled: datetime, result: BatchAttemptResult) -> None:
        now = _iso(workflow.now())
        self._state.attempts.append(
            AttemptRecord(
                attempt=attempt,
                scheduled_at=_iso(scheduled),
                started_at=result.started_at,
                finished_at=now,
                outcome="accepted",
                http_status=result.http_status,
            )
        )
        self._state.transport = result.transport
        self._state.sent_at = now
        self._state.last_error = None
        for item, outcome in zip(self._state.items, result.items, strict=True):
            item.updated_at = now
            if outcome.provider_message_id is not None:
                item.status = SendStatus.SENT
                item.provider_message_id = outcome.provider_message_id
                item.sent_at = now
            else:
                item.status = SendStatus.FAILED
                item.error = refusal(outcome.refusal or "refused by the provider")
        self._set_status(SendStatus.SENT, items_too=False)
        self._upsert_status()
        self._count_items()
        refused = sum(1 for item in self._state.items if item.status == SendStatus.FAILED)
        workflow.logger.info(
            "batch %s taken after %d attempt(s); %d of %d refused",
            self._state.id,
            attempt,
            refused,
            len(self._state.items),
        )

    def _fail(self, error: EmailError) -> None:
        for item in self._state.items:
            item.error = error
        self._set_status(SendStatus.FAILED)
        self._upsert_status()
        self._count_items()
        workflow.logger.warning("batch %s failed: %s", self._state.id, error.type)

    async def _track(self, wait: timedelta) -> None:
        """After the call: apply early events, then wait (one timer) until every item has
        a final outcome, or the delivery wait ends."""
        self._sent = True
        for index, record in self._pending:
            self._apply(self._state.items[index], record)
        self._pending.clear()

        def every_item_ended() -> bool:
            return all(item.status in ENDING_DELIVERY_STATUSES for item in self._state.items)

        # An outbox batch (development) has nobody to report on it: it ends when written.
        if self._state.transport == OutboxTransport.name:
            return
        if not every_item_ended() and not await _wait_until(every_item_ended, wait):
            workflow.logger.info("no final event for every item of %s", self._state.id)

    def _apply(self, item: BatchItemState, record: DeliveryEventRecord) -> None:
        status = DELIVERY_EVENT_STATUS[record.type]
        if item.status in FINAL_DELIVERY_STATUSES and status not in FINAL_DELIVERY_STATUSES:
            return  # a late `delivery_delayed` does not undo `delivered`
        if item.status != status:
            item.status = status
            item.updated_at = _iso(workflow.now())

    def _set_status(self, status: SendStatus, *, items_too: bool = True) -> None:
        """The call's status; until the provider takes the call, every item's too."""
        now = _iso(workflow.now())
        self._state.status = status
        self._state.updated_at = now
        if items_too:
            for item in self._state.items:
                item.status = status
                item.updated_at = now
        counts = self.counts()
        summary = f"**{status}** after {len(self._state.attempts)} attempt(s): " + ", ".join(
            f"{n} {s}" for s, n in counts.items()
        )
        if self._state.last_error:
            summary += f"; last error `{self._state.last_error.type}`"
        workflow.set_current_details(summary)

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for item in self._state.items:
            counts[item.status] = counts.get(item.status, 0) + 1
        return counts

    def _upsert_status(self) -> None:
        workflow.upsert_search_attributes([EMAIL_STATUS.value_set(self._state.status)])

    def _count_items(self) -> None:
        counter = self._metrics.create_counter(
            "email_sends", "Emails by final send outcome", "{email}"
        )
        for status, n in self.counts().items():
            counter.add(n, {"outcome": status, "kind": self._state.kind.value})
