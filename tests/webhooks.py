"""Resend webhooks signed exactly as Svix signs them (independent of the verifier under test)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from typing import Any

import httpx

from testkit.keys import WEBHOOK_SECRET

WEBHOOK_URL = "/v1/webhooks/resend"


def svix_headers(
    body: bytes,
    *,
    secret: str = WEBHOOK_SECRET,
    msg_id: str | None = None,
    timestamp: int | None = None,
) -> dict[str, str]:
    """HMAC-SHA256 over `{id}.{timestamp}.{body}` with the base64 secret after `whsec_`."""
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    timestamp = int(time.time()) if timestamp is None else timestamp
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    signature = "v1," + base64.b64encode(digest).decode()
    return {
        "svix-id": msg_id,
        "svix-timestamp": str(timestamp),
        # A rotated secret's signature first: verification must try every entry.
        "svix-signature": f"v1,{base64.b64encode(b'old-secret-signature').decode()} {signature}",
        "content-type": "application/json",
    }


def event_body(
    event_type: str,
    *,
    email_id: str | None,
    provider_id: str = "re-unknown",
    message: str | None = None,
) -> bytes:
    data: dict[str, Any] = {
        "email_id": provider_id,
        "from": "durable-mail <onboarding@resend.dev>",
        "to": ["ann@example.com"],
        "subject": "hello",
        "created_at": "2026-11-23T10:00:00.000Z",
    }
    if email_id is not None:
        data["tags"] = {"kind": "invite", "email_id": email_id}
        if message is not None:
            data["tags"]["message"] = message
    if event_type == "email.bounced":
        data["bounce"] = {
            "message": "The recipient ann@example.com does not exist",
            "type": "Permanent",
            "subType": "General",
        }
    # Compact, key order as sent: the signature covers these exact bytes.
    return json.dumps(
        {"type": event_type, "created_at": "2026-11-23T10:00:01.000Z", "data": data},
        separators=(",", ":"),
    ).encode()


async def post_event(
    api: httpx.AsyncClient,
    event_type: str,
    *,
    email_id: str | None,
    provider_id: str = "re-unknown",
    msg_id: str | None = None,
    message: str | None = None,
) -> httpx.Response:
    body = event_body(event_type, email_id=email_id, provider_id=provider_id, message=message)
    return await api.post(WEBHOOK_URL, content=body, headers=svix_headers(body, msg_id=msg_id))
