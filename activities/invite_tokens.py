"""Managed invite tokens: derived from a server secret, never stored or recorded in clear.

token  = base64url(HMAC-SHA256(secret, "invite-token" | invite_id | nonce))   (256 bits)
digest = HMAC-SHA256(secret, "invite-token-digest" | token)                    (hex)

The API derives the token once to record its digest in the workflow input; the rendered
email (recorded in history) holds `PLACEHOLDER` where the link's token goes, and
`TokenFillingTransport` puts the token there at send time, the same bytes on every attempt.
So the token exists only in the email itself: history, with or without the payload codec,
holds the nonce and the digest, neither of which yields the token without the secret. An
accept sends the digest of the presented token; the workflow compares digests in constant
time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import replace

from activities import errors
from activities.transports.base import EmailTransport, ProviderFailure, SentBatch, SentEmail
from activities.types import EmailMessage, InviteToken

# URL- and HTML-safe, so it survives the link's query string and autoescaping unchanged.
PLACEHOLDER = "__durable_mail_invite_token__"
MIN_SECRET_CHARS = 32


def _mac(secret: str, *parts: str) -> bytes:
    message = b"\x00".join(part.encode() for part in parts)
    return hmac.new(secret.encode(), message, hashlib.sha256).digest()


def derive_token(secret: str, ref: InviteToken) -> str:
    """The invite's token: what the email's link carries and the app posts back."""
    raw = _mac(secret, "invite-token", ref.invite_id, ref.nonce)
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def token_digest(secret: str, token: str) -> str:
    """What the workflow keeps and compares: useless without the secret."""
    return _mac(secret, "invite-token-digest", token).hex()


def fill_token(message: EmailMessage, secret: str) -> EmailMessage:
    """The message as it goes out: the placeholder replaced by the derived token."""
    if message.invite_token is None:
        return message
    token = derive_token(secret, message.invite_token)

    def filled(part: str | None) -> str | None:
        return part.replace(PLACEHOLDER, token) if part is not None else None

    return replace(message, text=filled(message.text), html=filled(message.html), invite_token=None)


class TokenFillingTransport:
    """Wraps a transport: messages with an `invite_token` get their token just before sending.

    Without a secret (INVITE_TOKEN_SECRET unset on this worker) such a message cannot go
    out: the attempt fails as transient, so a worker restarted with the secret sends it.
    """

    def __init__(self, inner: EmailTransport, secret: str | None) -> None:
        self.inner = inner
        self.name = inner.name
        self.capabilities = inner.capabilities
        self._secret = secret

    def _filled(self, message: EmailMessage) -> EmailMessage:
        if message.invite_token is None:
            return message
        if not self._secret:
            raise ProviderFailure(
                errors.INVITE_TOKEN_UNAVAILABLE,
                "INVITE_TOKEN_SECRET is not set on this worker: the invite link cannot be made",
            )
        return fill_token(message, self._secret)

    async def send(self, message: EmailMessage, idempotency_key: str) -> SentEmail:
        return await self.inner.send(self._filled(message), idempotency_key)

    async def send_batch(self, messages: list[EmailMessage], idempotency_key: str) -> SentBatch:
        return await self.inner.send_batch([self._filled(m) for m in messages], idempotency_key)
