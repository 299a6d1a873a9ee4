"""What the API asks of Temporal about the events sent to one webhook endpoint (Resend's
webhook events API): list them, read one with its payload and its attempts, replay one.

How an endpoint's events are found without scanning every workflow: each email's
`AppEventDelivery` keeps its events and their deliveries (attempts included) in its memo, and
a visibility query lists the caller's tenant's delivery runs by their workflow-id prefix
(`app-events/<tenant>/`); the server answers with the memos, so no worker replays anything.
The limit, documented in docs/webhooks.md: the `MAX_RUNS` most recent delivery runs of the
tenant are read (older events are no longer listed), as long as the namespace retains them.
Another tenant's endpoint, or an event not sent to this endpoint, is the same 404 as an
unknown one. A replay signals (or starts again) the email's delivery workflow: one more try,
durable, with the event's own svix-id.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from temporalio.client import Client, WorkflowExecution

from activities.app_webhook_types import (
    DELIVERIES_MEMO,
    DELIVERY_WORKFLOW,
    EVENTS_MEMO,
    REPLAY_SIGNAL,
    AppEvent,
    AppEventsInput,
    DeliveryPolicyInput,
    DeliveryTry,
    EventDelivery,
    ReplayInput,
    delivery_workflow_id,
    delivery_workflow_prefix,
)
from api.errors import NotFound
from api.temporal_errors import RPC_TIMEOUT, temporal_errors
from api.tenants import Caller
from api.webhook_endpoints import get_endpoint
from config import Settings

# The tenant's most recent delivery runs read per call (one email's events per run).
MAX_RUNS = 1_000
NO_SUCH_EVENT = "no event with this id was sent to this webhook"
# Our delivery statuses in Resend's words (a skipped event, endpoint disabled, is failed).
STATUS = {"delivered": "success", "failed": "failed", "skipped": "failed"}


@dataclass
class EndpointEvent:
    """One event sent to one endpoint, its tries across the runs that made them."""

    event: AppEvent
    status: str
    next_attempt_at: str | None
    tries: list[DeliveryTry] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.event.id


def resend_status(delivery: EventDelivery) -> str:
    return STATUS.get(delivery.status, "attempting" if delivery.attempts else "pending")


def _query(caller: Caller) -> str:
    prefix = delivery_workflow_prefix(caller.tenant_id).replace("'", "\\'")
    return f"WorkflowType = '{DELIVERY_WORKFLOW}' AND WorkflowId STARTS_WITH '{prefix}'"


async def _runs(client: Client, caller: Caller) -> list[WorkflowExecution]:
    with temporal_errors():
        runs = [
            run
            async for run in client.list_workflows(
                _query(caller), limit=MAX_RUNS, rpc_timeout=RPC_TIMEOUT
            )
        ]
    return sorted(runs, key=lambda run: run.start_time, reverse=True)


async def endpoint_events(client: Client, caller: Caller, endpoint_id: str) -> list[EndpointEvent]:
    """The events sent to one of the caller's endpoints, newest first (NotFound if the
    endpoint is not theirs)."""
    await get_endpoint(client, caller, endpoint_id)
    found: dict[str, EndpointEvent] = {}
    for run in await _runs(client, caller):  # newest run first: its status is current
        events: list[AppEvent] = await run.memo_value(EVENTS_MEMO, [], type_hint=list[AppEvent])
        deliveries: list[EventDelivery] = await run.memo_value(
            DELIVERIES_MEMO, [], type_hint=list[EventDelivery]
        )
        by_id = {event.id: event for event in events}
        for delivery in deliveries:
            event = by_id.get(delivery.event_id)
            if delivery.endpoint_id != endpoint_id or event is None:
                continue
            record = found.setdefault(
                event.id, EndpointEvent(event, resend_status(delivery), delivery.next_attempt_at)
            )
            known = {t.id for t in record.tries}
            record.tries.extend(t for t in delivery.tries if t.id not in known)
    for record in found.values():
        record.tries.sort(key=lambda t: t.sent_at, reverse=True)
    return sorted(found.values(), key=lambda r: (r.event.created_at, r.id), reverse=True)


async def endpoint_event(
    client: Client, caller: Caller, endpoint_id: str, event_id: str
) -> EndpointEvent:
    """One event sent to one of the caller's endpoints (NotFound otherwise)."""
    events = await endpoint_events(client, caller, endpoint_id)
    found = next((record for record in events if record.id == event_id), None)
    if found is None:
        raise NotFound(NO_SUCH_EVENT)
    return found


async def replay_event(
    client: Client, settings: Settings, caller: Caller, endpoint_id: str, event_id: str
) -> EndpointEvent:
    """Send the event to the endpoint once more (a signal, or a start of the email's
    delivery workflow again if it ended: durable either way)."""
    record = await endpoint_event(client, caller, endpoint_id, event_id)
    email_id = str(record.event.data.get("email_id"))
    policy = DeliveryPolicyInput(
        settings.webhook_retry_delay_list, settings.webhook_timeout_seconds
    )
    with temporal_errors():
        await client.start_workflow(
            DELIVERY_WORKFLOW,
            AppEventsInput(caller.tenant_id, email_id, policy),
            id=delivery_workflow_id(caller.tenant_id, email_id),
            task_queue=settings.task_queue,
            start_signal=REPLAY_SIGNAL,
            start_signal_args=[ReplayInput(record.event, endpoint_id)],
            rpc_timeout=RPC_TIMEOUT,
        )
    return record
