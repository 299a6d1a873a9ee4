"""`AppEventDelivery`: one email's events to the app's endpoints, durable and in order.

Started (or signalled) by the email's workflow through `emit.AppEvents` for each event
some endpoint of the tenant subscribes to. Each endpoint has its own lane: its events go
one after the other, in the order the email's workflow emitted them, so a failing endpoint
delays only its own events. Each attempt is a single-try activity and the workflow owns the
schedule (an immediate try, then WEBHOOK_RETRY_DELAYS: Resend's 5 s ... 10 h, 27.6 h in
all), so every attempt is in the history and in the `deliveries` query. An event that
exhausts the schedule is marked `failed` and its lane moves on. The workflow ends once
every lane is done and nothing new came for `IDLE`; a later event starts it again. It
continues as new (carrying what is not delivered) when its history grows.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy, VersioningBehavior
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.app_webhook_types import (
        DELIVERIES_MEMO,
        DELIVERY_WORKFLOW,
        EVENT_SIGNAL,
        EVENTS_MEMO,
        REPLAY_SIGNAL,
        AppEventSignal,
        AppEventsInput,
        DeliverInput,
        DeliverResult,
        DeliveryTry,
        EventDelivery,
        ReplayInput,
    )
    from activities.app_webhooks import AppWebhookActivities
    from workflows.delivery.history import iso

IDLE = timedelta(minutes=10)
MAX_HISTORY_EVENTS = 5_000
# Finished deliveries kept for the read (the oldest go first).
KEEP_FINISHED = 200
SINGLE_TRY = RetryPolicy(maximum_attempts=1)
DONE = ("delivered", "failed", "skipped")


@workflow.defn(name=DELIVERY_WORKFLOW, versioning_behavior=VersioningBehavior.PINNED)
class AppEventDelivery:
    """One email's events, delivered to each subscribed endpoint in order."""

    @workflow.init
    def __init__(self, data: AppEventsInput) -> None:
        self._data = data
        self._events = {event.id: event for event in data.events}
        self._deliveries = data.deliveries
        self._lanes: dict[str, asyncio.Task[None]] = {}
        self._pausing = False

    @workflow.run
    async def run(self, data: AppEventsInput) -> None:
        if data.deliveries:  # a continued run: its memo starts empty
            self._publish()
        self._start_lanes()
        while True:
            await workflow.wait_condition(lambda: not self._lanes or self._pausing)
            if self._pausing or self._history_full():
                self._pausing = True
                await workflow.wait_condition(lambda: not self._lanes)
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(self._carry())
            try:
                await workflow.wait_condition(lambda: bool(self._lanes), timeout=IDLE)
            except TimeoutError:
                if not self._lanes and not self._pending():
                    return

    @workflow.signal(name=EVENT_SIGNAL)
    def on_events(self, signals: list[AppEventSignal]) -> None:
        for signal in signals:
            event = signal.event
            if event.id in self._events:
                continue  # the emitting activity ran again: once is enough
            self._events[event.id] = event
            for endpoint_id in signal.endpoint_ids:
                self._deliveries.append(EventDelivery(event.id, event.type, endpoint_id))
        self._publish()
        self._start_lanes()

    @workflow.signal(name=REPLAY_SIGNAL)
    def on_replay(self, data: ReplayInput) -> None:
        """One more try of a finished delivery (one under way is left to its schedule)."""
        self._events.setdefault(data.event.id, data.event)
        found = self._find(data.event.id, data.endpoint_id)
        if found is None:  # a new run: the event's earlier tries are in the one before
            found = EventDelivery(data.event.id, data.event.type, data.endpoint_id)
            self._deliveries.append(found)
        elif found.status not in DONE:
            return
        found.status = "pending"
        found.replay = True
        self._publish()
        self._start_lanes()

    def _find(self, event_id: str, endpoint_id: str) -> EventDelivery | None:
        return next(
            (
                d
                for d in self._deliveries
                if d.event_id == event_id and d.endpoint_id == endpoint_id
            ),
            None,
        )

    def _publish(self) -> None:
        """The run's events and deliveries in its memo (encrypted by the codec, as every
        payload): a listing reads them without a worker."""
        wanted = {d.event_id for d in self._deliveries}
        events = [e for e in self._events.values() if e.id in wanted]
        workflow.upsert_memo({EVENTS_MEMO: events, DELIVERIES_MEMO: self._deliveries})

    @workflow.query
    def deliveries(self) -> list[EventDelivery]:
        return self._deliveries

    def _pending(self) -> list[EventDelivery]:
        return [d for d in self._deliveries if d.status not in DONE]

    def _start_lanes(self) -> None:
        if self._pausing:
            return
        for delivery in self._pending():
            if delivery.endpoint_id not in self._lanes:
                self._lanes[delivery.endpoint_id] = asyncio.create_task(
                    self._lane(delivery.endpoint_id)
                )

    async def _lane(self, endpoint_id: str) -> None:
        """The endpoint's events in order, each until delivered or out of tries."""
        try:
            while not self._pausing:
                if self._history_full():
                    self._pausing = True
                    return
                delivery = next((d for d in self._pending() if d.endpoint_id == endpoint_id), None)
                if delivery is None:
                    return
                await self._deliver(delivery)
        finally:
            del self._lanes[endpoint_id]

    async def _deliver(self, delivery: EventDelivery) -> None:
        delays = self._data.policy.retry_delays_seconds
        while delivery.status not in DONE and not self._pausing:
            if delivery.attempts > 0 and not delivery.replay:
                delay = delays[min(delivery.attempts, len(delays)) - 1]
                delivery.next_attempt_at = iso(workflow.now() + timedelta(seconds=delay))
                await workflow.sleep(delay)
            await self._attempt(delivery)
            out_of_tries = delivery.replay or delivery.attempts > len(delays)
            if delivery.status == "attempting" and out_of_tries:
                delivery.status = "failed"
            delivery.replay = False
            self._publish()

    async def _attempt(self, delivery: EventDelivery) -> None:
        delivery.status = "attempting"
        delivery.attempts += 1
        delivery.next_attempt_at = None
        delivery.last_attempt_at = sent_at = iso(workflow.now())
        try:
            result = await self._call(delivery)
        except ActivityError:
            # Timed out (or the worker failed it): one failed try, in our own words.
            result = DeliverResult("failed", error="the attempt timed out or failed")
        delivery.last_http_status = result.http_status
        delivery.last_error = result.error
        answer = result.error or f"HTTP {result.http_status}"
        delivery.tries.append(
            DeliveryTry(f"att_{workflow.uuid4().hex}", sent_at, result.http_status, answer)
        )
        if result.outcome == "delivered":
            delivery.status = "delivered"
            delivery.delivered_at = iso(workflow.now())
        elif result.outcome == "skipped":
            delivery.status = "skipped"

    async def _call(self, delivery: EventDelivery) -> DeliverResult:
        timeout = self._data.policy.attempt_timeout_seconds
        return await workflow.execute_activity_method(
            AppWebhookActivities.deliver,
            DeliverInput(
                self._data.tenant_id, delivery.endpoint_id, self._events[delivery.event_id], timeout
            ),
            # The request is bounded by `timeout`; the margin covers reading the endpoint.
            start_to_close_timeout=timedelta(seconds=timeout + 10),
            retry_policy=SINGLE_TRY,
            summary=f"{delivery.type} to {delivery.endpoint_id} #{delivery.attempts}",
        )

    def _history_full(self) -> bool:
        info = workflow.info()
        return (
            info.get_current_history_length() > MAX_HISTORY_EVENTS
            or info.is_continue_as_new_suggested()
        )

    def _carry(self) -> AppEventsInput:
        pending = self._pending()
        finished = [d for d in self._deliveries if d.status in DONE][-KEEP_FINISHED:]
        needed = {d.event_id for d in pending}
        return AppEventsInput(
            tenant_id=self._data.tenant_id,
            email_id=self._data.email_id,
            policy=self._data.policy,
            events=[e for e in self._events.values() if e.id in needed],
            deliveries=finished + pending,
        )
