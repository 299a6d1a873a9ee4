"""Idempotency of accepts: the id a request's key maps to, and the fingerprint of its body.

The same tenant, kind and `Idempotency-Key` always give the same send id (so the same
workflow id: Temporal refuses a second start), whichever of the tenant's keys sent it: a
retry that spans a key rotation finds the first send.

Ids are keyed (HMAC under a server secret derived from the payload codec keys), so nobody
outside computes one from a guessed key, and carry a keyed tag over (tenant, id):
`owned_workflow_id` refuses another tenant's id, or a forged one, exactly as it refuses an
id that names nothing, before any call to Temporal (same answer, same time, with or
without a worker). The id key is derived from the *last* codec key, the oldest, which a
rotation keeps (new key first) for as long as its histories are retained: far longer than
the 23 h in which a retry can still find its send. A tag verifies under any listed key.

The fingerprint, kept in the
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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from activities.delivery_contract import SendKind
from api.errors import InvalidIdempotencyKey
from api.tenants import Caller
from config import Settings
from infra.codec import parse_codec_keys
from workflows.ids import (
    ID_HEX,
    TAG_HEX,
    batch_item_of,
    batch_workflow_id_for,
    is_tagged_key,
    is_untagged_key,
    key_of,
    workflow_id_for,
)

MAX_IDEMPOTENCY_KEY = 256
FINGERPRINT_INFO = b"durable-mail request fingerprint v1"
ID_INFO = b"durable-mail public id v1"
# With ALLOW_PLAINTEXT_PAYLOADS and no codec key, the bodies themselves are stored in the
# clear: the fingerprint is then keyed with a public constant (it hides nothing more).
PLAINTEXT_KEY_ID = "plaintext"
OPERATOR_SCOPE = "operator"


def send_key(
    kind: str, idempotency_key: str | None, *, tenant_id: str | None, surface: str = ""
) -> str:
    """A fresh id, or one derived from the tenant's idempotency key (same key, same id),
    with its tag: 48 hex digits an outsider can neither compute nor forge.

    Sends of no tenant (an operator's) share one scope, whichever operator key sent them.
    `kind` is what the key names: a `SendKind`, or `batch_kind(kind)` for a batch. Another
    `surface` (the Resend-compatible API) has keys apart from /v1's: the two fingerprint
    different bodies, so a key shared between them could only ever answer 409.
    """
    keys = IdKeys.installed()
    if idempotency_key is None:
        return keys.tagged(uuid.uuid4().hex, tenant_id)
    if not 1 <= len(idempotency_key) <= MAX_IDEMPOTENCY_KEY or not idempotency_key.isprintable():
        raise InvalidIdempotencyKey("Idempotency-Key must be 1-256 printable characters")
    scope = _scope(tenant_id)
    if surface:
        scope += f"/{surface}"
    material = f"id\x00{scope}\x00{kind}\x00{idempotency_key}".encode()
    return keys.tagged(
        hmac.new(keys.issuing, material, hashlib.sha256).hexdigest()[:ID_HEX], tenant_id
    )


def _scope(tenant_id: str | None) -> str:
    return f"tenant:{tenant_id}" if tenant_id is not None else OPERATOR_SCOPE


class IdKeys:
    """The keys of ids and tags: the issuing one and every one a tag verifies under.

    Installed once per process by the API (`install`, from its settings); a process that
    serves several apps (tests) verifies under the keys of each.
    """

    _installed: IdKeys | None = None

    def __init__(self, issuing: bytes, verifying: Sequence[bytes]) -> None:
        self.issuing = issuing
        self.verifying = tuple(dict.fromkeys([issuing, *verifying]))

    @classmethod
    def from_settings(cls, settings: Settings) -> IdKeys:
        configured = settings.payload_codec_keys
        codec_keys = configured.get_secret_value().strip() if configured else ""
        if not codec_keys:
            # ALLOW_PLAINTEXT_PAYLOADS: ids are then keyed with a public constant (see
            # docs/security.md: the tags hide nothing more than the clear histories do).
            constant = PLAINTEXT_KEY_ID.encode()
            return cls(constant, [constant])
        derived = [_hkdf(ID_INFO, key) for key in parse_codec_keys(codec_keys).values()]
        return cls(derived[-1], derived)

    @classmethod
    def install(cls, settings: Settings) -> IdKeys:
        keys = cls.from_settings(settings)
        previous = cls._installed
        if previous is not None:
            keys = IdKeys(keys.issuing, [*keys.verifying, *previous.verifying])
        cls._installed = keys
        return keys

    @classmethod
    def installed(cls) -> IdKeys:
        if cls._installed is None:
            raise RuntimeError("no id keys: the API installs them at create_app")
        return cls._installed

    def _tag(self, key: bytes, id_hex: str, tenant_id: str | None) -> str:
        message = f"tag\x00{_scope(tenant_id)}\x00{id_hex}".encode()
        return hmac.new(key, message, hashlib.sha256).hexdigest()[:TAG_HEX]

    def tagged(self, id_hex: str, tenant_id: str | None) -> str:
        return id_hex + self._tag(self.issuing, id_hex, tenant_id)

    def owns(self, key: str, tenant_id: str | None) -> bool:
        """Whether a tagged `key` was issued to `tenant_id` (the same work for any key)."""
        id_hex, tag = key[:ID_HEX], key[ID_HEX:].encode()
        found = False
        for secret in self.verifying:
            found |= hmac.compare_digest(self._tag(secret, id_hex, tenant_id).encode(), tag)
        return found


def owns_public_id(public_id: str, caller: Caller) -> bool:
    """Whether `caller` may ask Temporal about `public_id` at all.

    An id issued since 1.0 must carry the caller's tenant's tag (operators see every
    tenant: its shape is enough). An id issued by 0.1.0 (no tag) passes: Temporal's
    `TenantId` check decides, as it did then (docs/security.md says what still holds).
    Any other shape is no id of ours.
    """
    key = key_of(public_id)
    if key is None:
        return False
    if is_tagged_key(key):
        return caller.operator or IdKeys.installed().owns(key, caller.tenant_id)
    return caller.operator or is_untagged_key(key)


def owned_workflow_id(public_id: str, caller: Caller) -> str | None:
    """The workflow id of a single send (`inv_…`, `em_…`) the caller may see; None for
    another tenant's id, a forged one, or one that names nothing (one answer for all)."""
    return workflow_id_for(public_id) if owns_public_id(public_id, caller) else None


def owned_batch_workflow_id(public_id: str, caller: Caller) -> str | None:
    """`owned_workflow_id` for a batch's id (`bat_…`)."""
    return batch_workflow_id_for(public_id) if owns_public_id(public_id, caller) else None


def owned_batch_item(public_id: str, caller: Caller) -> tuple[str, SendKind, int] | None:
    """`owned_workflow_id` for a batch item's id (`inv_<key>_3`): its batch, kind and index."""
    return batch_item_of(public_id) if owns_public_id(public_id, caller) else None


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
            key_id: _hkdf(FINGERPRINT_INFO, key)
            for key_id, key in parse_codec_keys(codec_keys).items()
        }
    )


def _hkdf(info: bytes, key: bytes) -> bytes:
    return HKDF(SHA256(), 32, salt=None, info=info).derive(key)


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
