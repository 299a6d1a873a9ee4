"""Resend's webhook endpoints API: `POST /webhooks`, `GET /webhooks` (cursor pages),
`GET/PATCH/DELETE /webhooks/{id}`, `POST /webhooks/{id}/signing-secret/rotate`, and the
events sent to each (`webhook_events`: list, get, attempts, replay).

The same routes serve `/v1/webhook-endpoints` (`api.routes.webhook_endpoints`): `routes()`
builds them for a prefix and a route class (Resend's error format here, ours on /v1).
Every call is the caller's tenant's (`api.webhook_endpoints`). An endpoint receives our
email events with our email ids, Svix-signed with its `signing_secret` (docs/webhooks.md).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field

from activities.app_webhook_types import ChangeEndpointInput, WebhookEndpoint
from api.deps import CallerDep, SettingsDep, TemporalClientDep
from api.resend_compat.errors import ResendRoute
from api.resend_compat.webhook_events import event_routes
from api.webhook_endpoints import (
    change_endpoint,
    checked_endpoint,
    checked_events,
    checked_status,
    create_endpoint,
    get_endpoint,
    list_endpoints,
    new_secret,
    page_of,
)

TAG = "Webhook endpoints"
MAX_URL = 2048


class CreateWebhook(BaseModel):
    endpoint: str = Field(max_length=MAX_URL, description="The https URL events are posted to")
    events: list[str] = Field(max_length=32, description="The event types to receive")


class UpdateWebhook(BaseModel):
    endpoint: str | None = Field(default=None, max_length=MAX_URL)
    events: list[str] | None = Field(default=None, max_length=32)
    status: Literal["enabled", "disabled"] | None = None


class WebhookRef(BaseModel):
    object: Literal["webhook"] = "webhook"
    id: str


class WebhookSecret(WebhookRef):
    signing_secret: str


class WebhookDeleted(WebhookRef):
    deleted: bool = True


class WebhookItem(WebhookRef):
    created_at: str
    status: str
    endpoint: str
    events: list[str]


class WebhookObject(WebhookItem):
    signing_secret: str


class WebhookList(BaseModel):
    object: Literal["list"] = "list"
    has_more: bool
    data: list[WebhookItem]


def _item(endpoint: WebhookEndpoint) -> dict[str, Any]:
    """The endpoint as listed (its secret only in `get`, create and rotate answers)."""
    return {k: v for k, v in asdict(endpoint).items() if k != "signing_secret"}


def routes(route_class: type[APIRoute], prefix: str, **options: Any) -> APIRouter:
    """The webhook endpoints API at `prefix`, answering errors as `route_class` does."""
    router = APIRouter(prefix=prefix, route_class=route_class, **options)

    @router.post("", response_model=WebhookSecret)
    async def create_webhook(
        body: CreateWebhook, client: TemporalClientDep, settings: SettingsDep, caller: CallerDep
    ) -> WebhookSecret:
        """Create a webhook endpoint; the answer holds its signing secret (`whsec_...`)."""
        made = await create_endpoint(client, settings, caller, body.endpoint, body.events)
        return WebhookSecret(id=made.id, signing_secret=made.signing_secret)

    @router.get("", response_model=WebhookList)
    async def list_webhooks(
        client: TemporalClientDep,
        caller: CallerDep,
        limit: Annotated[int, Query()] = 20,
        after: Annotated[str | None, Query(max_length=64)] = None,
        before: Annotated[str | None, Query(max_length=64)] = None,
    ) -> WebhookList:
        """List your webhook endpoints, newest first, in cursor pages (`after`, `before`)."""
        page = page_of(await list_endpoints(client, caller), limit, after, before)
        return WebhookList(
            has_more=page.has_more, data=[WebhookItem(**_item(e)) for e in page.items]
        )

    @router.get("/{webhook_id}", response_model=WebhookObject)
    async def get_webhook(
        webhook_id: str, client: TemporalClientDep, caller: CallerDep
    ) -> WebhookObject:
        """Retrieve one of your webhook endpoints, its signing secret included."""
        found = await get_endpoint(client, caller, webhook_id)
        return WebhookObject(**_item(found), signing_secret=found.signing_secret)

    @router.patch("/{webhook_id}", response_model=WebhookRef)
    async def update_webhook(
        webhook_id: str,
        body: UpdateWebhook,
        client: TemporalClientDep,
        settings: SettingsDep,
        caller: CallerDep,
    ) -> WebhookRef:
        """Change a webhook endpoint's URL, events or status (enabled, disabled)."""
        change = ChangeEndpointInput(
            id=webhook_id,
            endpoint=checked_endpoint(body.endpoint, settings) if body.endpoint else None,
            events=checked_events(body.events) if body.events is not None else None,
            status=checked_status(body.status) if body.status else None,
        )
        await change_endpoint(client, caller, change)
        return WebhookRef(id=webhook_id)

    @router.delete("/{webhook_id}", response_model=WebhookDeleted)
    async def delete_webhook(
        webhook_id: str, client: TemporalClientDep, caller: CallerDep
    ) -> WebhookDeleted:
        """Delete a webhook endpoint: events not yet delivered to it are dropped."""
        await change_endpoint(client, caller, ChangeEndpointInput(id=webhook_id, delete=True))
        return WebhookDeleted(id=webhook_id)

    @router.post("/{webhook_id}/signing-secret/rotate", response_model=WebhookSecret)
    async def rotate_webhook_secret(
        webhook_id: str, client: TemporalClientDep, caller: CallerDep
    ) -> WebhookSecret:
        """Give a webhook endpoint a new signing secret (the next attempts are signed with it)."""
        change = ChangeEndpointInput(id=webhook_id, signing_secret=new_secret())
        await change_endpoint(client, caller, change)
        return WebhookSecret(id=webhook_id, signing_secret=change.signing_secret or "")

    router.include_router(event_routes(route_class))
    return router


# Included by `api.resend_compat.routes` (its key scheme and error responses apply).
router = routes(ResendRoute, "/webhooks", tags=[TAG])
