"""Activities of app webhooks: hand an email's event over (`emit`) and deliver it (`deliver`).

`emit` is the one small step an email's workflow takes per event (a local activity): it
reads the tenant's endpoints and, if one is subscribed to the event's type, signals (or
starts) the email's `AppEventDelivery` workflow with the event; otherwise it does nothing.
`deliver` is one attempt to one endpoint: the endpoint's current URL and secret are read
at the attempt (a rotated secret signs the next try), the body is signed the Svix way
(svix-id, svix-timestamp, svix-signature) and posted through the SSRF guard
(`activities.outbound`). It never raises for the endpoint's answer: the workflow owns the
retry schedule and records each attempt.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
from svix.webhooks import Webhook
from temporalio import activity
from temporalio.client import Client
from temporalio.common import Priority
from temporalio.service import RPCError, RPCStatusCode

from activities.app_webhook_types import (
    DELIVERY_WORKFLOW,
    ENDPOINTS_MEMO,
    EVENT_SIGNAL,
    AppEventSignal,
    AppEventsInput,
    DeliverInput,
    DeliverResult,
    DeliveryPolicyInput,
    EmitInput,
    WebhookEndpoint,
    delivery_workflow_id,
    endpoints_workflow_id,
)
from activities.outbound import OutboundPolicy, OutboundRefused, Resolver, post, system_resolver
from config import MAX_FAIRNESS_KEY

log = logging.getLogger("durable_mail.app_webhooks")

USER_AGENT = "durable-mail-webhooks/1"


async def tenant_endpoints(client: Client, tenant_id: str | None) -> list[WebhookEndpoint]:
    """The tenant's endpoints (none if it never created one), from its endpoints workflow's
    memo: the server answers, no worker and no queue behind other reads."""
    handle = client.get_workflow_handle(endpoints_workflow_id(tenant_id))
    try:
        described = await handle.describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return []
        raise
    endpoints: list[WebhookEndpoint] = await described.memo_value(
        ENDPOINTS_MEMO, [], type_hint=list[WebhookEndpoint]
    )
    return endpoints


def signed_headers(endpoint: WebhookEndpoint, msg_id: str, body: str) -> dict[str, str]:
    """Svix's three headers for `body`, signed with the endpoint's current secret."""
    now = datetime.now(UTC)
    return {
        "svix-id": msg_id,
        "svix-timestamp": str(int(now.timestamp())),
        "svix-signature": Webhook(endpoint.signing_secret).sign(msg_id, now, body),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }


def delivery_priority(tenant_id: str | None) -> Priority:
    """An email's event deliveries share the queue by tenant (Temporal's fairness)."""
    return Priority(fairness_key=f"hooks:{tenant_id or '-'}"[:MAX_FAIRNESS_KEY])


def outbound_client() -> httpx.AsyncClient:
    """An HTTP client for the apps' endpoints: no proxy from the environment (it would
    connect instead of us, unchecked), no redirects, a pool per endpoint host."""
    return httpx.AsyncClient(
        trust_env=False,
        follow_redirects=False,
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
    )


@dataclass(frozen=True)
class AppWebhookConfig:
    """Where delivery workflows run, how they retry, what an outbound request may do."""

    task_queue: str
    delivery: DeliveryPolicyInput
    outbound: OutboundPolicy
    resolver: Resolver = system_resolver


class AppWebhookActivities:
    """Emit and deliver; the Temporal client, HTTP client and configuration are injected
    (`http` None: one of our own, made on first use inside the worker's event loop)."""

    def __init__(
        self, client: Client, http: httpx.AsyncClient | None, config: AppWebhookConfig
    ) -> None:
        self._client = client
        self._http = http
        self._config = config

    async def _endpoints(self, tenant_id: str | None) -> list[WebhookEndpoint]:
        # Read at each hand-over and each attempt, never cached: an endpoint created just
        # before a send gets its events, a rotated secret signs the very next attempt.
        return await tenant_endpoints(self._client, tenant_id)

    @activity.defn(name="emit_app_event")
    async def emit(self, data: EmitInput) -> int:
        """Hand the events some endpoint wants to each email's delivery workflow, in order,
        one signal (or start) per email (a batch's events name their item); the number
        handed over."""
        endpoints = [e for e in await self._endpoints(data.tenant_id) if e.status == "enabled"]
        by_email: dict[str, list[AppEventSignal]] = {}
        for event in data.events:
            ids = [e.id for e in endpoints if event.type in e.events]
            if ids:
                email_id = str(event.data.get("email_id") or data.email_id)
                by_email.setdefault(email_id, []).append(AppEventSignal(event, ids))
        for email_id, wanted in by_email.items():
            await self._client.start_workflow(
                DELIVERY_WORKFLOW,
                AppEventsInput(data.tenant_id, email_id, self._config.delivery),
                id=delivery_workflow_id(data.tenant_id, email_id),
                task_queue=self._config.task_queue,
                start_signal=EVENT_SIGNAL,
                start_signal_args=[wanted],
                # Its attempts inherit it: one tenant's slow or many endpoints share the
                # worker's slots fairly with another tenant's, instead of queueing them.
                priority=delivery_priority(data.tenant_id),
            )
        return sum(len(wanted) for wanted in by_email.values())

    @activity.defn(name="deliver_app_event")
    async def deliver(self, data: DeliverInput) -> DeliverResult:
        """One attempt to post one event to one endpoint (see the module docstring)."""
        endpoints = await self._endpoints(data.tenant_id)
        endpoint = next((e for e in endpoints if e.id == data.endpoint_id), None)
        if endpoint is None or endpoint.status != "enabled":
            return DeliverResult("skipped", error="the endpoint was deleted or disabled")
        body = json.dumps(data.event.payload(), separators=(",", ":"))
        headers = signed_headers(endpoint, data.event.id, body)
        if self._http is None:
            self._http = outbound_client()
        try:
            answer = await post(
                self._http,
                endpoint.endpoint,
                body.encode(),
                headers,
                self._config.outbound,
                self._config.resolver,
            )
        except OutboundRefused as refused:
            return DeliverResult("failed", error=f"refused: {refused}")
        except httpx.PoolTimeout:
            # Our connections were all in use: not the endpoint's doing (retried the same).
            return DeliverResult("failed", error="no connection of ours was free in time")
        except httpx.TimeoutException:
            return DeliverResult("failed", error="the endpoint did not answer in time")
        except TimeoutError:
            return DeliverResult("failed", error="the endpoint did not answer in time")
        except httpx.HTTPError as err:
            return DeliverResult("failed", error=f"connection failed ({type(err).__name__})")
        if 200 <= answer.status_code < 300:
            return DeliverResult("delivered", http_status=answer.status_code)
        return DeliverResult(
            "failed", http_status=answer.status_code, error=f"HTTP {answer.status_code}"
        )
