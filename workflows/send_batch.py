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

Bounded and honest since `batch-bounded-v1` (as single sends since `bounded-history-v1`):
- The messages are pinned once (the input, or the render's recorded result) and given to
  the first attempt only: later attempts read them with the `pinned_batch` query and
  check their digest.
- The send window (23 h) counts from the accept time in the input (`accepted_at`), which
  a reset keeps; no attempt is made past its end (`not_after`), by the workflow nor by the
  activity, so a reset run cannot call the provider after it may have forgotten the key.
- A run continues as new before its history nears Temporal's limits, mid-retries (carrying
  the messages, the attempt count and backoff, the window) or while it waits for delivery
  events (carrying the status and the end of the wait). Kept in the status: the first and
  the latest attempts and events, and the counts of all.
- Ends: `failed` only when the provider provably did not take the call; `undetermined` when
  an attempt's outcome is unknown (timeout, network error, 5xx, 409) or when a reset may
  have discarded attempts.
Batches started before it replay unchanged: their attempts carry the messages, their
window counts from the run's start, and they continue as new only when Temporal suggests it.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import NoReturn

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities import errors
    from activities.delivery_contract import (
        PINNED_BATCH_QUERY,
        SendKind,
        batch_idempotency_key,
        batch_sha256,
    )
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
        KEEP_FIRST_ATTEMPTS,
        KEEP_FIRST_EVENTS,
        KEEP_LAST_ATTEMPTS,
        KEEP_LAST_EVENTS,
        SINGLE_ATTEMPT,
        Delivery,
        _history_full,
        _iso,
        _keep,
        _wait_until,
        task_priority,
        unsent_ending,
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
BATCH_BOUNDED_PATCH = "batch-bounded-v1"


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
        self._sent = data.carry is not None and data.carry.tracking_until is not None
        self._pinned: list[EmailMessage] | None = None
        self._pending: list[tuple[int, DeliveryEventRecord]] = []
        self._metrics = workflow.metric_meter()

    @workflow.run
    async def run(self, data: SendBatchInput) -> BatchStatusResult:
        # Decided in each run's first task (a marker command in new runs; see module doc).
        bounded = workflow.patched(BATCH_BOUNDED_PATCH)
        carry = data.carry
        if bounded and carry is not None and carry.tracking_until is not None:
            # A run that continued as new while waiting for delivery events.
            await self._track_bounded(data, datetime.fromisoformat(carry.tracking_until))
            return self._state
        messages = carry.messages if carry else await self._messages(data)
        self._pinned = messages
        await self._send(data, messages, bounded=bounded)
        wait = timedelta(seconds=data.policy.delivery_wait_seconds)
        if bounded:
            await self._track_bounded(data, workflow.now() + wait)
        else:
            await self._track(wait)
        return self._state

    @workflow.query(name=BATCH_STATUS_QUERY)
    def status(self) -> BatchStatusResult:
        """Where the batch's call and each of its items stand."""
        return self._state

    @workflow.query(name=PINNED_BATCH_QUERY)
    def pinned_batch(self, digest: str) -> list[EmailMessage]:
        """The messages this batch pinned, for the send activity (not in its input)."""
        if self._pinned is None or batch_sha256(self._pinned) != digest:
            raise ApplicationError("no such batch is pinned here", type="NoPinnedMessage")
        return self._pinned

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
        # The first and the latest only (a stream of events must not grow the state).
        _keep(item.delivery_events, record, KEEP_FIRST_EVENTS, KEEP_LAST_EVENTS)
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

    async def _send(
        self, data: SendBatchInput, messages: list[EmailMessage], *, bounded: bool
    ) -> None:
        """Call until the provider takes it, a permanent error, or the end of the window."""
        policy, carry = data.policy, data.carry
        # The same key on every attempt, in every run of this workflow id.
        key = batch_idempotency_key(workflow.info().workflow_id, CALL)
        if carry is not None:
            attempt, deadline = carry.attempt, datetime.fromisoformat(carry.deadline)
            backoff = timedelta(seconds=carry.backoff_seconds)
        else:
            attempt, backoff = 0, timedelta(seconds=policy.initial_backoff_seconds)
            # Bounded: from the accept time, which a reset keeps (not from this run's start).
            since = workflow.now()
            if bounded:
                since = datetime.fromisoformat(
                    data.accepted_at or _iso(workflow.info().workflow_start_time)
                )
            deadline = since + timedelta(seconds=policy.window_seconds)
        if bounded:
            self._state.not_after = _iso(deadline)
        digest = batch_sha256(messages)
        while True:
            if bounded and _history_full():
                await self._continue_as_new(
                    data, BatchCarry(self._state, messages, attempt, backoff.total_seconds(),
                                     _iso(deadline))
                )  # fmt: skip
            scheduled = workflow.now()
            if bounded and scheduled >= deadline:
                self._end_unsent(
                    EmailError(
                        errors.SEND_WINDOW_CLOSED,
                        "the send window ended before another attempt could be made",
                    )
                )
            attempt += 1
            self._set_status(SendStatus.SENDING)
            attempt_input = (
                # The messages in the first attempt only; later ones read the pinned ones
                # (`pinned_batch`), so a retry series does not record them once per attempt.
                BatchAttemptInput(messages if attempt == 1 else None, key, attempt,
                                  messages_sha256=digest, not_after=_iso(deadline))
                if bounded
                else BatchAttemptInput(messages=messages, idempotency_key=key, attempt=attempt)
            )  # fmt: skip
            try:
                result = await workflow.execute_activity_method(
                    SendActivities.send_batch,
                    attempt_input,
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
                self._add_attempt(record)
                error = EmailError(record.error_type or "", record.error_message or "")
                self._state.last_error = error
                delay = retry_after if retry_after is not None else backoff
                if permanent or workflow.now() + delay >= deadline:
                    if not permanent:
                        error.message += " (send window exhausted)"
                    self._end_unsent(error)
                record.retry_in_seconds = delay.total_seconds()
                self._set_status(SendStatus.RETRYING)
                await workflow.sleep(delay)
                backoff = min(backoff * 2, timedelta(seconds=policy.max_backoff_seconds))
                if not bounded and workflow.info().is_continue_as_new_suggested():
                    carried = BatchCarry(
                        self._state, messages, attempt, backoff.total_seconds(), _iso(deadline)
                    )
                    workflow.continue_as_new(replace(data, carry=carried))
                continue
            self._accepted(attempt, scheduled, result)
            return

    async def _continue_as_new(self, data: SendBatchInput, carry: BatchCarry) -> NoReturn:
        """Continue as new with what the batch needs (same workflow id, so same key)."""
        await workflow.wait_condition(workflow.all_handlers_finished)
        info = workflow.info()
        workflow.logger.info(
            "batch %s continues as new after %d events (%d bytes), %d attempts",
            self._state.id,
            info.get_current_history_length(),
            info.get_current_history_size(),
            self._state.attempt_count,
        )
        self._metrics.create_counter(
            "email_continued_as_new", "Runs that continued as new to bound history", "{run}"
        ).add(1, {"kind": "batch"})
        self._state.runs += 1
        workflow.continue_as_new(replace(data, carry=carry))

    def _add_attempt(self, record: AttemptRecord) -> None:
        """Count it, keep the first few and the latest, note an unknown outcome."""
        self._state.attempt_count = max(self._state.attempt_count, len(self._state.attempts))
        self._state.attempt_count += 1
        self._state.attempts_omitted += _keep(
            self._state.attempts, record, KEEP_FIRST_ATTEMPTS, KEEP_LAST_ATTEMPTS
        )
        if record.outcome != "accepted" and record.error_type not in errors.NOT_ACCEPTED:
            self._state.provider_may_have_accepted = True

    def _end_unsent(self, error: EmailError) -> NoReturn:
        """End a batch the provider did not take: `failed` if it provably did not, else
        `undetermined` (an attempt's outcome is unknown, or a reset may have lost some)."""
        may_have_accepted = self._state.provider_may_have_accepted
        status, failure_type = unsent_ending(error, may_have_accepted, "batch")
        self._state.last_error = error
        for item in self._state.items:
            item.error = error
        self._set_status(status)
        self._upsert_status()
        self._count_items()
        workflow.logger.warning("batch %s %s: %s", self._state.id, status, error.type)
        raise ApplicationError(
            f"batch not delivered ({status}): {error.message}",
            self._state,
            type=failure_type,
            non_retryable=True,
        )

    def _accepted(self, attempt: int, scheduled: datetime, result: BatchAttemptResult) -> None:
        now = _iso(workflow.now())
        self._add_attempt(
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

    async def _track_bounded(self, data: SendBatchInput, until: datetime) -> None:
        """`_track` of bounded batches: it continues as new (with the time left) if a stream
        of delivery events fills this run's history."""
        if not self._sent:
            self._sent = True
            for index, record in self._pending:
                self._apply(self._state.items[index], record)
            self._pending.clear()
        if self._state.transport == OutboxTransport.name:
            return

        def every_item_ended() -> bool:
            return all(item.status in ENDING_DELIVERY_STATUSES for item in self._state.items)

        while not every_item_ended() and workflow.now() < until:
            await _wait_until(lambda: every_item_ended() or _history_full(), until - workflow.now())
            if not every_item_ended() and workflow.now() < until:
                carry = BatchCarry(self._state, [], 0, 0.0, "", tracking_until=_iso(until))
                await self._continue_as_new(data, carry)
        if not every_item_ended():
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
