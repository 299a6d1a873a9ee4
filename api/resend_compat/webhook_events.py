"""Resend's webhook events API: `GET /webhooks/{id}/events` (cursor pages),
`GET /webhooks/{id}/events/{event_id}`, `GET .../{event_id}/attempts` (cursor pages) and
`POST .../{event_id}/replay`; built by `webhooks.routes()` under each prefix it serves.

The events are ours (`api.webhook_events`): their ids are the svix-ids the endpoint got;
statuses in Resend's words (pending, attempting, success, failed). An attempt's `response`
is our account of the answer (`HTTP 500`, `the endpoint did not answer in time`): the
endpoint's body is not read; `http_status_code` is 0 when no HTTP answer came.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.routing import APIRoute
from pydantic import BaseModel

from api.deps import CallerDep, SettingsDep, TemporalClientDep
from api.webhook_endpoints import page_of
from api.webhook_events import endpoint_event, endpoint_events, replay_event

Cursor = Annotated[str | None, Query(max_length=80)]


@dataclass
class PageQuery:
    """Resend's cursor paging parameters."""

    limit: int = 20
    after: Cursor = None
    before: Cursor = None


PageDep = Annotated[PageQuery, Depends()]


class WebhookEventItem(BaseModel):
    id: str
    type: str
    created_at: str
    status: str


class WebhookEventList(BaseModel):
    object: Literal["list"] = "list"
    has_more: bool
    data: list[WebhookEventItem]


class WebhookEventRef(BaseModel):
    object: Literal["webhook_event"] = "webhook_event"
    id: str


class WebhookEventObject(WebhookEventRef):
    type: str
    created_at: str
    status: str
    next_attempt_at: str | None
    payload: dict[str, Any]


class WebhookEventAttempt(BaseModel):
    id: str
    http_status_code: int
    response: str
    sent_at: str


class WebhookEventAttemptList(BaseModel):
    object: Literal["list"] = "list"
    has_more: bool
    data: list[WebhookEventAttempt]


def event_routes(route_class: type[APIRoute]) -> APIRouter:
    """The events routes, relative to a webhook endpoint's path (`/{webhook_id}/events`)."""
    router = APIRouter(prefix="/{webhook_id}/events", route_class=route_class)

    @router.get("", response_model=WebhookEventList)
    async def list_webhook_events(
        webhook_id: str,
        client: TemporalClientDep,
        caller: CallerDep,
        query: PageDep,
    ) -> WebhookEventList:
        """The events sent to one of your webhooks, newest first, in cursor pages."""
        events = await endpoint_events(client, caller, webhook_id)
        page = page_of(events, query.limit, query.after, query.before)
        data = [
            WebhookEventItem(
                id=r.id, type=r.event.type, created_at=r.event.created_at, status=r.status
            )
            for r in page.items
        ]
        return WebhookEventList(has_more=page.has_more, data=data)

    @router.get("/{event_id}", response_model=WebhookEventObject)
    async def get_webhook_event(
        webhook_id: str, event_id: str, client: TemporalClientDep, caller: CallerDep
    ) -> WebhookEventObject:
        """One event sent to one of your webhooks: its status and its payload."""
        found = await endpoint_event(client, caller, webhook_id, event_id)
        return WebhookEventObject(
            id=found.id,
            type=found.event.type,
            created_at=found.event.created_at,
            status=found.status,
            next_attempt_at=found.next_attempt_at,
            payload=found.event.payload(),
        )

    @router.get("/{event_id}/attempts", response_model=WebhookEventAttemptList)
    async def list_webhook_event_attempts(
        webhook_id: str,
        event_id: str,
        client: TemporalClientDep,
        caller: CallerDep,
        query: PageDep,
    ) -> WebhookEventAttemptList:
        """The delivery attempts of one event to one of your webhooks, newest first."""
        found = await endpoint_event(client, caller, webhook_id, event_id)
        page = page_of(found.tries, query.limit, query.after, query.before)
        data = [
            WebhookEventAttempt(
                id=t.id, http_status_code=t.http_status or 0, response=t.response, sent_at=t.sent_at
            )
            for t in page.items
        ]
        return WebhookEventAttemptList(has_more=page.has_more, data=data)

    @router.post("/{event_id}/replay", response_model=WebhookEventRef)
    async def replay_webhook_event(
        webhook_id: str,
        event_id: str,
        client: TemporalClientDep,
        settings: SettingsDep,
        caller: CallerDep,
    ) -> WebhookEventRef:
        """Send an event to one of your webhooks once more (a new attempt, same svix-id)."""
        found = await replay_event(client, settings, caller, webhook_id, event_id)
        return WebhookEventRef(id=found.id)

    return router
