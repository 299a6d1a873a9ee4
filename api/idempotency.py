"""Idempotency of accepts: the id a request's key maps to, and the fingerprint of its body.

The same tenant, kind and `Idempotency-Key` always give the same send id (so the same
workflow id: Temporal refuses a second start), whichever of the tenant's keys sent it: a
retry that spans a key rotation finds the first send. The fingerprint, kept in the
workflow's memo, tells a true repeat (answered again) from a key reused for another body
(409). It is an HMAC, so the memo cannot be used to confirm a guessed body.

Fingerprint keys are derived from the payload codec keys (HKDF, one per codec key, named by
its key id): no extra secret to provision, and the same rotation rule. The first key
fingerprints a new request; a repeat matches under any listed key, so rotating the codec
keys (new key first, old ones kept) does not turn a legitimate repeat into a 409.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from activities.delivery_contract import SendKind
from api.errors import InvalidIdempotencyKey
from config import Settings
from infra.codec import parse_codec_keys

MAX_IDEMPOTENCY_KEY = 256
FINGERPRINT_INFO = b"durable-mail request fingerprint v1"
# With ALLOW_PLAINTEXT_PAYLOADS and no codec key, the bodies themselves are stored in the
# clear: the fingerprint is then keyed with a public constant (it hides nothing more).
PLAINTEXT_KEY_ID = "plaintext"
OPERATOR_SCOPE = "operator"


def send_key(
    kind: str, idempotency_key: str | None, *, tenant_id: str | None, surface: str = ""
) -> str:
    """A fresh hex id, or one derived from the tenant's idempotency key (same key, same id).

    Sends of no tenant (an operator's) share one scope, whichever operator key sent them.
    `kind` is what the key names: a `SendKind`, or `batch_kind(kind)` for a batch. Another
    `surface` (the Resend-compatible API) has keys apart from /v1's: the two fingerprint
    different bodies, so a key shared between them could only ever answer 409.
    """
    if idempotency_key is None:
        return uuid.uuid4().hex
    if not 1 <= len(idempotency_key) <= MAX_IDEMPOTENCY_KEY or not idempotency_key.isprintable():
        raise InvalidIdempotencyKey("Idempotency-Key must be 1-256 printable characters")
    scope = f"tenant:{tenant_id}" if tenant_id is not None else OPERATOR_SCOPE
    if surface:
        scope += f"/{surface}"
    material = f"{scope}\x00{kind}\x00{idempotency_key}".encode()
    return hashlib.sha256(material).hexdigest()[:32]


def batch_kind(kind: SendKind) -> str:
    """The idempotency scope of a batch of `kind` (its key never names a single send)."""
    return f"batch-{kind}"


class FingerprintKeys:
    """The HMAC keys of request fingerprints, newest first, by id."""

    def __init__(self, keys: Mapping[str, bytes]) -> None:
        if not keys:
            raise ValueError("at least one fingerprint key is needed")
        self._keys = dict(keys)

    @classmethod
    def from_settings(cls, settings: Settings) -> FingerprintKeys:
        configured = settings.payload_codec_keys
        return _derive(configured.get_secret_value().strip() if configured else "")

    def fingerprint(self, body: Mapping[str, Any], idempotency_key: str | None) -> Fingerprint:
        """The fingerprint of a request (its JSON body as validated, and its key)."""
        canonical = json.dumps(body, sort_keys=True)
        message = f"{idempotency_key}\x00{canonical}".encode()
        return Fingerprint(
            tuple(
                f"hmac-sha256:{key_id}:{hmac.new(key, message, hashlib.sha256).hexdigest()}"
                for key_id, key in self._keys.items()
            )
        )


@lru_cache(maxsize=4)
def _derive(codec_keys: str) -> FingerprintKeys:
    """One fingerprint key per codec key (HKDF-SHA256), under the codec key's id."""
    if not codec_keys:
        return FingerprintKeys({PLAINTEXT_KEY_ID: PLAINTEXT_KEY_ID.encode()})
    return FingerprintKeys(
        {
            key_id: HKDF(SHA256(), 32, salt=None, info=FINGERPRINT_INFO).derive(key)
            for key_id, key in parse_codec_keys(codec_keys).items()
        }
    )


@dataclass(frozen=True)
class Fingerprint:
    """One request's fingerprint under every key; the first is the one recorded."""

    values: tuple[str, ...]

    @property
    def recorded(self) -> str:
        return self.values[0]

    def matches(self, recorded: object) -> bool:
        """Whether `recorded` (from a memo) fingerprints this same request, under any key."""
        if not isinstance(recorded, str):
            return False
        found = False
        for value in self.values:
            found |= hmac.compare_digest(value.encode(), recorded.encode())
        return found
