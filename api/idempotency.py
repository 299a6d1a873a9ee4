"""Idempotency of accepts: the id a request's key maps to, and the fingerprint of its body.

The same caller, kind and `Idempotency-Key` always give the same send id (so the same
workflow id: Temporal refuses a second start); the fingerprint, kept in the workflow's memo,
tells a true repeat (answered again) from a key reused for another body (409).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from typing import Any

from activities.delivery_contract import SendKind
from api.errors import InvalidIdempotencyKey

MAX_IDEMPOTENCY_KEY = 256


def send_key(scope: str, kind: SendKind, idempotency_key: str | None) -> str:
    """A fresh hex id, or one derived from the caller's idempotency key (same key, same id)."""
    if idempotency_key is None:
        return uuid.uuid4().hex
    if not 1 <= len(idempotency_key) <= MAX_IDEMPOTENCY_KEY or not idempotency_key.isprintable():
        raise InvalidIdempotencyKey("Idempotency-Key must be 1-256 printable characters")
    material = f"{scope}\x00{kind}\x00{idempotency_key}".encode()
    return hashlib.sha256(material).hexdigest()[:32]


def request_fingerprint(body: Mapping[str, Any], idempotency_key: str | None) -> str:
    """Fingerprint of a request (its JSON body as validated, and its key)."""
    canonical = json.dumps(body, sort_keys=True)
    return hashlib.sha256(f"{idempotency_key}\x00{canonical}".encode()).hexdigest()
