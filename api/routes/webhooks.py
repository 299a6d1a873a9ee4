"""`POST /v1/webhooks/resend`: Resend's delivery events, verified, routed to the send's workflow.

Authenticated by the Svix signature on the raw body, not by our API key. Resend delivers at
least once and retries anything but a 2xx, so every event we cannot use (unknown email,
closed workflow, event type we do not track) is acknowledged and logged; repeats are
dropped by the workflow, which remembers the svix ids it has seen (any API process may
receive the repeat, so a process-local cache would not do).
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from fastapi import APIRouter, HTTPException, Request, status

from api.deps import ClientDep, SettingsDep
from api.metrics import WEBHOOK_EVENTS
from api.schemas import WebhookAck
from api.svix import InvalidSignature, verify
from api.temporal import find_by_provider_id, signal_delivery_event
from workflows.ids import workflow_id_for
from workflows.status import DELIVERY_EVENT_STATUS
from workflows.types import DeliveryEventInput

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])
log = logging.getLogger("durable_mail.webhooks")

_PROVIDER_ID = re.compile(r"^[A-Za-z0-9-]{1,100}$")
MAX_DETAIL = 200


def _tags(data: dict[str, Any]) -> dict[str, str]:
    """Resend sends tags as an object; accept the list-of-{name, value} form too."""
    tags = data.get("tags")
    if isinstance(tags, dict):
        return {str(k): str(v) for k, v in tags.items()}
    if isinstance(tags, list):
        return {str(t.get("name")): str(t.get("value")) for t in tags if isinstance(t, dict)}
    return {}


def _detail(data: dict[str, Any]) -> str | None:
    # Only the classification: bounce messages can quote the recipient's address.
    bounce = data.get("bounce")
    if isinstance(bounce, dict):
        parts = [str(bounce[k]) for k in ("type", "subType") if bounce.get(k)]
        return "/".join(parts)[:MAX_DETAIL] or None
    return None


async def _workflow_of(client: ClientDep, data: dict[str, Any]) -> str | None:
    email_id = _tags(data).get("email_id")
    if email_id and (workflow_id := workflow_id_for(email_id)):
        return workflow_id
    provider_id = data.get("email_id")
    if isinstance(provider_id, str) and _PROVIDER_ID.match(provider_id):
        return await find_by_provider_id(client, provider_id)
    return None


@router.post("/resend", response_model=WebhookAck)
async def resend_webhook(request: Request, client: ClientDep, settings: SettingsDep) -> WebhookAck:
    """Receive a Resend (Svix-signed) webhook and signal the email's workflow."""
    secret = settings.resend_webhook_secret
    if secret is None or not secret.get_secret_value():
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "webhook not configured")
    body = await request.body()
    try:
        event_id = verify(secret.get_secret_value(), request.headers, body)
    except InvalidSignature as err:
        log.warning("webhook rejected: %s", err)
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid signature") from None
    try:
        payload = json.loads(body)
        event_type = str(payload["type"])
        data: dict[str, Any] = payload.get("data") or {}
    except (ValueError, KeyError, TypeError, AttributeError):
        log.warning("webhook %s: unreadable payload, acknowledged", event_id)
        WEBHOOK_EVENTS.labels("unknown", "unreadable").inc()
        return WebhookAck(status="ignored")
    if event_type not in DELIVERY_EVENT_STATUS:
        WEBHOOK_EVENTS.labels(event_type[:40], "ignored").inc()
        return WebhookAck(status="ignored")
    workflow_id = await _workflow_of(client, data)
    delivered = workflow_id is not None and await signal_delivery_event(
        client,
        workflow_id,
        DeliveryEventInput(
            event_id=event_id,
            type=event_type,
            occurred_at=str(payload.get("created_at") or "") or None,
            detail=_detail(data),
        ),
    )
    if not delivered:
        # Not ours, or its workflow is closed (e.g. after the delivery wait): retrying
        # would not help, so acknowledge.
        log.warning(
            "webhook %s %s: no open workflow (workflow_id=%s), acknowledged",
            event_id,
            event_type,
            workflow_id,
        )
        WEBHOOK_EVENTS.labels(event_type, "unknown_email").inc()
        return WebhookAck(status="unknown_email")
    log.info("webhook %s %s signalled workflow_id=%s", event_id, event_type, workflow_id)
    WEBHOOK_EVENTS.labels(event_type, "signalled").inc()
    return WebhookAck(status="accepted")
