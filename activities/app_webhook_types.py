"""Inputs, results and records of the app-webhook workflows, and their ids.

The signing secrets travel only in update arguments, update results, query results and
continue-as-new inputs, all of which go through the payload codec (encrypted); workflow ids
hold the tenant id and our email id, never an address.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ENDPOINTS_WORKFLOW = "AppWebhookEndpoints"
DELIVERY_WORKFLOW = "AppEventDelivery"
EVENT_SIGNAL = "app_event"
# One more try of an event already delivered or given up on (Resend's replay).
REPLAY_SIGNAL = "replay_app_event"
# The delivery workflow's memo keys: its events and their deliveries, read by listing
# (the server answers; no worker, no query replaying each run).
EVENTS_MEMO = "events"
DELIVERIES_MEMO = "deliveries"
# The endpoints workflow's memo key holding its endpoints (read by describe).
ENDPOINTS_MEMO = "endpoints"
# Update failures the API answers as 404 / 422 (the messages are ours, PII-free).
ENDPOINT_NOT_FOUND = "WebhookEndpointNotFound"
TOO_MANY_ENDPOINTS = "TooManyWebhookEndpoints"

# Resend's webhook event types for an email (we do not receive mail: no `email.received`),
# and `email.canceled` (Resend's `last_event` word; Resend itself sends no such webhook).
EMAIL_EVENT_TYPES = (
    "email.sent",
    "email.scheduled",
    "email.delivered",
    "email.delivery_delayed",
    "email.complained",
    "email.bounced",
    "email.opened",
    "email.clicked",
    "email.failed",
    "email.suppressed",
    "email.canceled",
)


def endpoints_workflow_id(tenant_id: str | None) -> str:
    """The tenant's endpoints workflow (operator keys share one, as they share sends)."""
    return f"app-webhooks/{tenant_id}" if tenant_id is not None else "app-webhooks//operator"


def delivery_workflow_id(tenant_id: str | None, email_id: str) -> str:
    """One email's event deliveries (tenant ids and email ids never hold a `/`)."""
    return f"{delivery_workflow_prefix(tenant_id)}{email_id}"


def delivery_workflow_prefix(tenant_id: str | None) -> str:
    """What every delivery workflow id of the tenant starts with (a visibility query)."""
    return f"app-events/{tenant_id or ''}/"


@dataclass
class WebhookEndpoint:
    """One endpoint as stored; `signing_secret` is `whsec_` + base64 (Svix's format)."""

    id: str
    endpoint: str
    events: list[str]
    signing_secret: str
    created_at: str
    status: str = "enabled"  # or "disabled"


@dataclass
class EndpointsState:
    """The endpoints workflow's input: what a run carries into the next."""

    tenant_id: str | None
    max_endpoints: int = 20
    endpoints: list[WebhookEndpoint] = field(default_factory=list)


@dataclass
class CreateEndpointInput:
    endpoint: WebhookEndpoint


@dataclass
class ChangeEndpointInput:
    """Update (fields left None are kept), rotate (`signing_secret`) or delete one."""

    id: str
    endpoint: str | None = None
    events: list[str] | None = None
    status: str | None = None
    signing_secret: str | None = None
    delete: bool = False


@dataclass
class AppEvent:
    """One event for the app, in Resend's payload shape; `id` becomes the svix-id (stable
    across attempts: the app dedupes by it)."""

    id: str
    type: str
    created_at: str
    data: dict[str, Any]

    def payload(self) -> dict[str, Any]:
        return {"type": self.type, "created_at": self.created_at, "data": self.data}


@dataclass
class DeliveryPolicyInput:
    """How deliveries retry: an immediate try, then one after each delay (seconds)."""

    retry_delays_seconds: list[float]
    attempt_timeout_seconds: float


@dataclass
class AppEventSignal:
    """An event and the endpoints subscribed to its type when it happened (the signal
    carries a list of them, in order)."""

    event: AppEvent
    endpoint_ids: list[str]


@dataclass
class DeliveryTry:
    """One attempt to post an event to an endpoint: its answer in our words (the endpoint's
    body is not read: bounded, and possibly not the app's to show)."""

    id: str
    sent_at: str
    http_status: int | None
    response: str


@dataclass
class EventDelivery:
    """One event to one endpoint: visible through the deliveries read (attempts per event)."""

    event_id: str
    type: str
    endpoint_id: str
    status: str = "pending"  # attempting, delivered, failed, skipped
    attempts: int = 0
    last_http_status: int | None = None
    last_error: str | None = None
    last_attempt_at: str | None = None
    next_attempt_at: str | None = None
    delivered_at: str | None = None
    # Each attempt (bounded: the schedule's tries plus replays).
    tries: list[DeliveryTry] = field(default_factory=list)
    # A replay asked for one more try, not a new retry schedule.
    replay: bool = False


@dataclass
class ReplayInput:
    """Resend's replay: the event once more to one endpoint (a new try, the same svix-id)."""

    event: AppEvent
    endpoint_id: str


@dataclass
class AppEventsInput:
    """The delivery workflow's input; a continued run carries what is not done yet."""

    tenant_id: str | None
    email_id: str
    policy: DeliveryPolicyInput
    events: list[AppEvent] = field(default_factory=list)
    deliveries: list[EventDelivery] = field(default_factory=list)


@dataclass
class DeliverInput:
    """One attempt to deliver one event to one endpoint."""

    tenant_id: str | None
    endpoint_id: str
    event: AppEvent
    timeout_seconds: float


@dataclass
class DeliverResult:
    """`delivered`, `failed` (try again) or `skipped` (endpoint gone or disabled)."""

    outcome: str
    http_status: int | None = None
    error: str | None = None


@dataclass
class EmitInput:
    """An email's workflow hands over its queued events, oldest first (local activity)."""

    tenant_id: str | None
    email_id: str
    events: list[AppEvent]
