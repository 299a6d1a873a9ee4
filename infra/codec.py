"""Payload encryption: AES-256-GCM over every payload the SDK stores in Temporal.

Workflow inputs, results, memos, query answers and failure details hold recipients, invite
tokens and bodies. The server only ever sees `binary/encrypted` payloads; the key id travels
in the metadata so old histories stay readable after a rotation (put the new key first, keep
the old ones after it).

Failure messages and stack traces are not payloads: they stay in clear (the Web UI's rows
show why an attempt failed), so they hold only our own words; a provider's text, which can
quote a recipient, goes into the failure's details (`AttemptFailureDetails.provider_message`).
Failures recorded before 1.0 have their message encoded (`Encoded failure`): still decoded.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping, Sequence

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

ENCODING = b"binary/encrypted"
KEY_ID_METADATA = "encryption-key-id"
NONCE_BYTES = 12


class CodecKeyError(ValueError):
    """The codec configuration is malformed, or a payload names a key we do not have."""


def parse_codec_keys(value: str) -> dict[str, bytes]:
    """`id1:base64key,id2:base64key` -> ordered {id: 32-byte key} (first one encrypts)."""
    keys: dict[str, bytes] = {}
    for item in value.split(","):
        key_id, sep, encoded = item.strip().partition(":")
        if not sep or not key_id or not key_id.isprintable():
            raise CodecKeyError("PAYLOAD_CODEC_KEYS entries look like keyid:base64-32-bytes")
        try:
            key = base64.b64decode(encoded.strip(), validate=True)
        except binascii.Error:
            raise CodecKeyError(f"PAYLOAD_CODEC_KEYS key {key_id!r} is not base64") from None
        if len(key) != 32:
            raise CodecKeyError(f"PAYLOAD_CODEC_KEYS key {key_id!r} must be 32 bytes")
        if key_id in keys:
            raise CodecKeyError(f"PAYLOAD_CODEC_KEYS key id {key_id!r} appears twice")
        keys[key_id] = key
    return keys


def new_codec_key(key_id: str) -> str:
    """A fresh `keyid:base64` entry for PAYLOAD_CODEC_KEYS."""
    return f"{key_id}:{base64.b64encode(os.urandom(32)).decode()}"


class EncryptionCodec(PayloadCodec):
    """Encrypts with the first key; decrypts with whichever key id a payload names."""

    def __init__(self, keys: Mapping[str, bytes]) -> None:
        if not keys:
            raise CodecKeyError("at least one payload codec key is needed")
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys.items()}
        self._key_id = next(iter(keys))

    @classmethod
    def from_config(cls, value: str) -> EncryptionCodec:
        return cls(parse_codec_keys(value))

    @property
    def key_id(self) -> str:
        """The id of the key new payloads are encrypted with."""
        return self._key_id

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self._encrypt(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self._decrypt(p) for p in payloads]

    def _encrypt(self, payload: Payload) -> Payload:
        nonce = os.urandom(NONCE_BYTES)
        key_id = self._key_id.encode()
        # The key id is authenticated too: a payload cannot be relabelled to another key.
        sealed = self._ciphers[self._key_id].encrypt(nonce, payload.SerializeToString(), key_id)
        return Payload(
            metadata={"encoding": ENCODING, KEY_ID_METADATA: key_id}, data=nonce + sealed
        )

    def _decrypt(self, payload: Payload) -> Payload:
        # Payloads written before encryption was enabled pass through unchanged.
        if payload.metadata.get("encoding") != ENCODING:
            return payload
        key_id = payload.metadata.get(KEY_ID_METADATA, b"").decode(errors="replace")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise CodecKeyError(f"no payload codec key with id {key_id!r}")
        data = payload.data
        plain = cipher.decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:], key_id.encode())
        decoded = Payload()
        decoded.ParseFromString(plain)
        return decoded
