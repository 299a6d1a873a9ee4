"""The API's gate: who is calling, per-caller rate limit, body size limit, the codec's CORS.

A pure ASGI middleware, so every refusal (401, 413, 429) happens before FastAPI reads or
parses a body and before any dependency runs: a caller without a key costs one hash.

Deny by default: every route needs a caller except the few in `OPEN_PATHS` /
`OPEN_PREFIXES`, which authenticate otherwise (webhooks by signature) or serve nothing
private. The decision uses the path the router routes (root path removed exactly as
Starlette's router removes it), and never the client's address, a forwarded header or
`Origin`. What a caller may then do (operator-only routes, tenant scoping) is decided by
the routes and the service with the `Caller` found here.

Other surfaces (the Resend-compatible API) are guarded the same way and word the guard's
refusals in their own error format (`Surface`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from starlette._utils import get_route_path
from starlette.types import ASGIApp, Receive, Scope, Send

from api.asgi_io import preflight, read_body, replay_body, with_cors
from api.tenants import CODEC_UI_KEY_ID, Caller, KeyRing
from api.throttle import KEY_PREFIX_CHARS, FailedAuthentications, TokenBucket
from config import Settings

__all__ = ["Caller", "RequestGuard", "route_path"]

# Served to anyone: probes, the API's own docs, and webhooks (signed by the provider).
OPEN_PATHS = frozenset(
    {"/healthz", "/readyz", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
)
OPEN_PREFIXES = ("/docs/assets/", "/v1/webhooks/", "/dev/outbox")
CODEC_PREFIX = "/codec"
# `/codec/<capability>/decode`: the Web UI's capability URL (it cannot send a key).
_CODEC_CAPABILITY = re.compile(r"/codec/([^/]+)/(?:decode|encode)")


class Refusal(StrEnum):
    """Why the guard turned a request away."""

    MISSING_KEY = "missing_key"
    # An Authorization header without a key (`Bearer ` from an SDK whose key is unset).
    EMPTY_KEY = "empty_key"
    INVALID_KEY = "invalid_key"
    RATE_LIMITED = "rate_limited"
    # Too many failed authentications from this client (or at this key prefix from it).
    AUTH_THROTTLED = "auth_throttled"
    TOO_LARGE = "too_large"


@dataclass(frozen=True)
class Refused:
    """A refusal and its figure: seconds to wait (rate limit) or the byte limit (too large)."""

    refusal: Refusal
    retry_after: int = 0
    max_bytes: int = 0


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Surface:
    """Paths guarded like /v1 (key, rate limit), whose refusals `word` in their own format."""

    prefixes: tuple[str, ...]
    word: Callable[[Refused], Answer]

    def covers(self, path: str) -> bool:
        return any(path == p or path.startswith(p + "/") for p in self.prefixes)


def v1_refusal(refused: Refused) -> Answer:
    """The guard's refusals as /v1 and every other route word them (`{"detail"}`, 401 with a
    Bearer challenge); a `Surface` words its own."""
    challenge = 'Bearer realm="durable-mail"'
    match refused.refusal:
        case Refusal.MISSING_KEY:
            detail = "missing API key: send Authorization: Bearer <key>"
            return Answer(401, {"detail": detail}, {"www-authenticate": challenge})
        case Refusal.INVALID_KEY | Refusal.EMPTY_KEY:
            challenge += ', error="invalid_token"'
            return Answer(401, {"detail": "invalid API key"}, {"www-authenticate": challenge})
        case Refusal.RATE_LIMITED:
            seconds = refused.retry_after
            detail = f"rate limit of this API key exceeded; retry in {seconds} s"
            return Answer(429, {"detail": detail}, {"retry-after": str(seconds)})
        case Refusal.AUTH_THROTTLED:
            seconds = refused.retry_after
            detail = f"too many failed authentications from this client; retry in {seconds} s"
            return Answer(429, {"detail": detail}, {"retry-after": str(seconds)})
        case Refusal.TOO_LARGE:
            detail = f"request body is larger than {refused.max_bytes} bytes"
            return Answer(413, {"detail": detail})


def route_path(scope: Scope) -> str:
    """The path the router matches: `scope["path"]` without the root path.

    Starlette's own function (its router calls it): if it ever moves, this import fails
    loudly rather than the guard and the router silently disagreeing.
    """
    return get_route_path(scope)


def is_open(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


class RequestGuard:
    """Authenticates every route but the open ones, rate-limits callers, bounds bodies."""

    def __init__(self, app: ASGIApp, settings: Settings, surfaces: Sequence[Surface] = ()) -> None:
        self.app = app
        self.settings = settings
        self.surfaces = surfaces
        self.keys = KeyRing.from_settings(settings)
        secret = settings.codec_ui_secret.get_secret_value() if settings.codec_ui_secret else ""
        self.codec_ui_digest = hashlib.sha256(secret.encode()).digest() if secret else None
        self.limiter = TokenBucket()
        self.failures = FailedAuthentications()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        settings = self.settings
        path = route_path(scope)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        codec = path == CODEC_PREFIX or path.startswith(CODEC_PREFIX + "/")
        # CORS only lets the Web UI's browser read answers; it never authorises anything.
        origin = headers.get("origin")
        cors_origin = origin if codec and origin in settings.codec_cors_origin_list else None
        if codec and scope["method"] == "OPTIONS":
            await preflight(send, cors_origin)
            return
        if cors_origin is not None:
            send = with_cors(send, cors_origin)

        surface = next((s for s in self.surfaces if s.covers(path)), None)
        word = surface.word if surface is not None else v1_refusal
        if not is_open(path):
            # The peer as the server gives it: a forwarded header counts only where uvicorn
            # is told to trust the proxy that sets it (`--forwarded-allow-ips`).
            client = scope["client"][0] if scope.get("client") else "-"
            presented = _presented(path, headers)
            prefix = presented[:KEY_PREFIX_CHARS]
            if presented and (wait := self.failures.wait(client, prefix)) > 0:
                seconds = max(1, math.ceil(wait))
                await _answer(send, word(Refused(Refusal.AUTH_THROTTLED, retry_after=seconds)))
                return
            caller = self._caller(path, headers, _literal(scope, path))
            if caller is None:
                if presented:
                    self.failures.failed(client, prefix)
                await _answer(send, word(Refused(_why_unauthenticated(headers))))
                return
            if not codec:
                wait = self.limiter.take(
                    caller.rate_bucket,
                    settings.api_rate_limit_per_second,
                    settings.api_rate_limit_burst,
                )
                if wait > 0:
                    seconds = max(1, math.ceil(wait))
                    await _answer(send, word(Refused(Refusal.RATE_LIMITED, retry_after=seconds)))
                    return
            scope.setdefault("state", {})["caller"] = caller

        if "content-length" in headers or "transfer-encoding" in headers:
            body = await read_body(receive, headers, settings.max_request_bytes)
            if body is None:
                limit = settings.max_request_bytes
                await _answer(send, word(Refused(Refusal.TOO_LARGE, max_bytes=limit)))
                return
            receive = replay_body(body, receive)
        await self.app(scope, receive, send)

    def _caller(self, path: str, headers: dict[str, str], literal: bool) -> Caller | None:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return self.keys.authenticate(token.strip())
        # Only a capability URL spelled literally (no percent-encoding, which the access
        # log would show undecoded, past any redaction that looks for `/codec/<x>/decode`).
        capability = _CODEC_CAPABILITY.fullmatch(path) if literal else None
        if capability and self.codec_ui_digest is not None:
            presented = hashlib.sha256(capability[1].encode()).digest()
            if hmac.compare_digest(presented, self.codec_ui_digest):
                return Caller(key_id=CODEC_UI_KEY_ID, operator=True)
        return None


def _presented(path: str, headers: dict[str, str]) -> str:
    """The credential a request presents (a bearer key, else a codec capability), or ""."""
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    capability = _CODEC_CAPABILITY.fullmatch(path)
    return capability[1] if capability else ""


def _literal(scope: Scope, path: str) -> bool:
    """Whether the request's path was sent as the router sees it (nothing percent-encoded)."""
    raw: bytes = scope.get("raw_path") or path.encode()
    return b"%" not in raw


def _why_unauthenticated(headers: dict[str, str]) -> Refusal:
    authorization = headers.get("authorization")
    if authorization is None:
        return Refusal.MISSING_KEY
    return Refusal.INVALID_KEY if authorization.partition(" ")[2].strip() else Refusal.EMPTY_KEY


async def _answer(send: Send, answer: Answer) -> None:
    body = json.dumps(answer.body).encode()
    raw = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *((k.encode(), v.encode()) for k, v in answer.headers.items()),
    ]
    await send({"type": "http.response.start", "status": answer.status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
