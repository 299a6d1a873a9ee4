"""Verification of Svix-signed webhooks (Resend signs its webhooks with Svix).

The signed content is `{svix-id}.{svix-timestamp}.{raw body}`, HMAC-SHA256 with the
base64-decoded secret after `whsec_`; the header holds space-separated `v1,<base64>`
signatures (several during a secret rotation). Always verify the raw bytes: re-serialised
JSON would not match.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping

TOLERANCE_SECONDS = 5 * 60
SECRET_PREFIX = "whsec_"


class InvalidSignature(Exception):
    """Missing, forged or stale signature; the route answers 401."""


def _secret_bytes(secret: str) -> bytes:
    try:
        return base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidSignature("webhook secret is not valid base64") from None


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `v1,<base64>` signature of one message."""
    content = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(_secret_bytes(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify(secret: str, headers: Mapping[str, str], body: bytes, now: float | None = None) -> str:
    """Check the signature and freshness of a webhook; returns its `svix-id`."""
    msg_id = headers.get("svix-id")
    stamp = headers.get("svix-timestamp")
    signatures = headers.get("svix-signature")
    if not msg_id or not stamp or not signatures:
        raise InvalidSignature("missing svix headers")
    try:
        timestamp = int(stamp)
    except ValueError:
        raise InvalidSignature("bad svix-timestamp") from None
    current = time.time() if now is None else now
    # A replay of a captured request outside the window fails here, whatever its signature.
    if abs(current - timestamp) > TOLERANCE_SECONDS:
        raise InvalidSignature("stale or future svix-timestamp")
    expected = sign(secret, msg_id, timestamp, body)
    for candidate in signatures.split():
        if candidate.startswith("v1,") and hmac.compare_digest(candidate, expected):
            return msg_id
    raise InvalidSignature("no matching signature")
