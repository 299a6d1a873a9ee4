"""`POST /v1/webhooks/resend`: Resend's delivery events, verified, routed to the send's workflow.

Authenticated by the Svix signature on the raw body, not by our API key: checked by the
`resend` SDK's `Webhooks.verify` (HMAC-SHA256 over `{svix-id}.{svix-timestamp}.{body}`,
constant-time, every signature of a rotation tried, 5-minute timestamp tolerance).

Resend delivers at least once and retries anything but a 2xx, so every event we cannot
use (unknown email, closed workflow, event type we do not track) is acknowledged and
logged; repeats are dropped by the workflow, which remembers the svix ids it has seen (any
API process may receive the repeat, so a process-local cache would not do).
"""

from __future__ import annotations

import logging
from typing import Any

import resend
from fastapi import APIRouter, HTTPException, Request, status
from starlette.datastructures import Headers

from activities.delivery_contract import EMAIL_ID_TAG, MESSAGE_TAG
from api.answers import WebhookAck
from api.deps import SettingsDep, TemporalClientDep
from api.metrics import WEBHOOK_EVENTS
from api.webhook_routing import find_send, signal_delivery_event
from workflows.delivery.events import APP_ONLY_EVENTS
from workflows.status import DELIVERY_EVENT_STATUS
from workflows.types import DeliveryEventInput

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])
log = logging.getLogger("durable_mail.webhooks")

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


def _verified(secret: str, headers: Headers, body: bytes) -> Any:
    """The event, parsed, if the Svix signature over these exact bytes is valid.

    ValueError otherwise (also for a body that is not UTF-8 JSON: it cannot be ours).
    """
    try:
        text = body.decode()
    except UnicodeDecodeError:
        raise ValueError("body is not UTF-8") from None
    return resend.Webhooks.verify(
        {
            "payload": text,
            "headers": {
                "id": headers.get("svix-id", ""),
                "timestamp": headers.get("svix-timestamp", ""),
                "signature": headers.get("svix-signature", ""),
            },
            "webhook_secret": secret,
        }
    )


@router.post("/resend", response_model=WebhookAck)
async def resend_webhook(
    request: Request, client: TemporalClientDep, settings: SettingsDep
) -> WebhookAck:
    """Receive a Resend (Svix-signed) webhook and signal the email's workflow."""
    secret = settings.resend_webhook_secret
    if secret is None or not secret.get_secret_value():
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "webhook not configured")
    body = await request.body()
    try:
        payload: Any = _verified(secret.get_secret_value(), request.headers, body)
    except ValueError as err:
        # The SDK's reasons name no secret: missing header, stale timestamp, no match...
        log.warning("webhook rejected: %s", err)
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid signature") from None
    event_id = request.headers["svix-id"]
    try:
        event_type = str(payload["type"])
        data: dict[str, Any] = payload.get("data") or {}
    except (KeyError, TypeError, AttributeError):
        log.warning("webhook %s: unreadable payload, acknowledged", event_id)
        WEBHOOK_EVENTS.labels("unknown", "unreadable").inc()
        return WebhookAck(status="ignored")
    if event_type not in DELIVERY_EVENT_STATUS and event_type not in APP_ONLY_EVENTS:
        WEBHOOK_EVENTS.labels(event_type[:40], "ignored").inc()
        return WebhookAck(status="ignored")
    # Our id from the tags we sent, else Resend's own id (`data.email_id`) to look up.
    provider_id = data.get("email_id")
    tags = _tags(data)
    email_id = tags.get(EMAIL_ID_TAG)
    workflow_id = await find_send(
        client,
        email_id=email_id,
        provider_message_id=provider_id if isinstance(provider_id, str) else None,
    )
    signalled = workflow_id is not None and await signal_delivery_event(
        client,
        workflow_id,
        DeliveryEventInput(
            event_id=event_id,
            type=event_type,
            occurred_at=str(payload.get("created_at") or "") or None,
            detail=_detail(data),
            # A batch holds many emails: it routes the event to the item by this id.
            email_id=email_id,
            message=tags.get(MESSAGE_TAG),
        ),
    )
    if not signalled:
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
