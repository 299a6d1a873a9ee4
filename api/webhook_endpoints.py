"""What the API asks of Temporal about a tenant's webhook endpoints and their deliveries.

Every call is scoped to the caller's tenant: the tenant's endpoints live in its own workflow
(`AppWebhookEndpoints`), so another tenant's endpoint id is simply not there (the same 404
as an unknown one), and an email's deliveries are read from the workflow named by the
caller's tenant and the email id. Endpoint URLs are checked here for a clear 422 (the check
that counts is at connect time, `activities.outbound`). Secrets are made here (never in a
workflow, whose randomness is not secret) and reach Temporal only in encrypted payloads.
"""

from __future__ import annotations

import base64
import secrets
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Generic, Protocol, TypeVar

from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowUpdateFailedError,
)
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from activities.app_webhook_types import (
    EMAIL_EVENT_TYPES,
    ENDPOINT_NOT_FOUND,
    ChangeEndpointInput,
    CreateEndpointInput,
    EndpointsState,
    EventDelivery,
    WebhookEndpoint,
    delivery_workflow_id,
    endpoints_workflow_id,
)
from activities.app_webhooks import tenant_endpoints
from activities.outbound import OutboundRefused, check_url
from api.errors import InvalidField, InvalidRequest, NotFound
from api.temporal_errors import RPC_TIMEOUT, temporal_errors
from api.tenants import Caller
from config import Settings
from workflows.app_events.delivery import AppEventDelivery
from workflows.app_events.endpoints import AppWebhookEndpoints

NO_SUCH_WEBHOOK = "no webhook with this id"
STATUSES = ("enabled", "disabled")
MAX_LIMIT = 100
T = TypeVar("T", bound="HasId")


def new_secret() -> str:
    """A Svix signing secret: `whsec_` and 24 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def checked_endpoint(url: str, settings: Settings) -> str:
    try:
        check_url(url, allow_private=settings.webhook_allow_private_urls)
    except OutboundRefused as refused:
        raise InvalidField("endpoint", str(refused)) from None
    return url


def checked_events(events: list[str]) -> list[str]:
    unknown = [event for event in events if event not in EMAIL_EVENT_TYPES]
    if not events or unknown:
        raise InvalidField(
            "events", f"events must be a non-empty list of: {', '.join(EMAIL_EVENT_TYPES)}"
        )
    return list(dict.fromkeys(events))


def checked_status(status: str) -> str:
    if status not in STATUSES:
        raise InvalidField("status", "status must be enabled or disabled")
    return status


async def create_endpoint(
    client: Client, settings: Settings, caller: Caller, url: str, events: list[str]
) -> WebhookEndpoint:
    """A new endpoint of the caller's tenant, with its signing secret."""
    endpoint = WebhookEndpoint(
        id=str(uuid.uuid4()),
        endpoint=checked_endpoint(url, settings),
        events=checked_events(events),
        signing_secret=new_secret(),
        created_at=datetime.now(UTC).isoformat(),
    )
    start = WithStartWorkflowOperation(
        AppWebhookEndpoints.run,
        EndpointsState(caller.tenant_id, settings.webhook_max_endpoints),
        id=endpoints_workflow_id(caller.tenant_id),
        task_queue=settings.task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )
    with temporal_errors(), _update_refusals():
        return await client.execute_update_with_start_workflow(
            AppWebhookEndpoints.create,
            CreateEndpointInput(endpoint),
            start_workflow_operation=start,
            rpc_timeout=RPC_TIMEOUT,
        )


async def change_endpoint(
    client: Client, caller: Caller, change: ChangeEndpointInput
) -> WebhookEndpoint:
    """Update, rotate or delete one of the caller's endpoints (NotFound if not theirs)."""
    handle = client.get_workflow_handle(endpoints_workflow_id(caller.tenant_id))
    with temporal_errors(), _update_refusals():
        try:
            return await handle.execute_update(
                AppWebhookEndpoints.change, change, rpc_timeout=RPC_TIMEOUT
            )
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:  # the tenant never had an endpoint
                raise NotFound(NO_SUCH_WEBHOOK) from None
            raise


@contextmanager
def _update_refusals() -> Iterator[None]:
    """A refused update (its validator) as the domain error it stands for."""
    try:
        yield
    except WorkflowUpdateFailedError as failed:
        cause = failed.cause
        if isinstance(cause, ApplicationError) and cause.type == ENDPOINT_NOT_FOUND:
            raise NotFound(NO_SUCH_WEBHOOK) from None
        message = cause.message if isinstance(cause, ApplicationError) else "refused"
        raise InvalidRequest(message) from None


async def list_endpoints(client: Client, caller: Caller) -> list[WebhookEndpoint]:
    """The caller's endpoints, newest first."""
    with temporal_errors():
        endpoints = await tenant_endpoints(client, caller.tenant_id)
    return sorted(endpoints, key=lambda e: e.created_at, reverse=True)


async def get_endpoint(client: Client, caller: Caller, endpoint_id: str) -> WebhookEndpoint:
    found = next((e for e in await list_endpoints(client, caller) if e.id == endpoint_id), None)
    if found is None:
        raise NotFound(NO_SUCH_WEBHOOK)
    return found


class HasId(Protocol):
    @property
    def id(self) -> str: ...


@dataclass
class Page(Generic[T]):
    items: list[T]
    has_more: bool


def page_of(items: list[T], limit: int, after: str | None, before: str | None) -> Page[T]:
    """Resend's cursor paging over a newest-first list (`after`/`before`: an id, excluded)."""
    if after and before:
        raise InvalidRequest("use `after` or `before`, not both")
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidRequest(f"limit must be between 1 and {MAX_LIMIT}")
    ids = [item.id for item in items]
    cursor = after or before
    if cursor is not None and cursor not in ids:
        raise InvalidRequest("the cursor is not one of this list's ids")
    if before:
        end = ids.index(before)
        start = max(0, end - limit)
        return Page(items[start:end], has_more=start > 0)
    start = ids.index(after) + 1 if after else 0
    chosen = items[start : start + limit]
    return Page(chosen, has_more=start + limit < len(items))


async def email_deliveries(client: Client, caller: Caller, email_id: str) -> list[EventDelivery]:
    """The deliveries of one email's events to the caller's endpoints, attempts included
    (none if no endpoint wanted them, or after the record was kept past its end)."""
    handle = client.get_workflow_handle(delivery_workflow_id(caller.tenant_id, email_id))
    with temporal_errors():
        try:
            return await handle.query(AppEventDelivery.deliveries, rpc_timeout=RPC_TIMEOUT)
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                return []
            raise
