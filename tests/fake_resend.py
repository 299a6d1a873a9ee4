"""A fake Resend HTTP API for tests and benchmarks.

It answers like https://api.resend.com (request fields, error bodies, idempotency keys and
rate-limit headers as documented in /work/shared/reference/resend-and-temporal.md §1), so the
activity code that passes against it also works against the real provider. What the real one
cannot do on demand is injected here: latency, scripted faults, random errors, a rate limit,
and "the client timed out but the email went out anyway" (``Fault(hold=...)``).

Use it in-process::

    with FakeResendServer() as server:        # or: async with FakeResendServer() as server:
        server.fake.enqueue_faults([Fault(status=429, retry_after=2)])
        ...  # point the code under test at server.url with the key DEFAULT_API_KEY
        await server.fake.wait_for_deliveries(1, timeout=5)

or as a separate process that a benchmark drives through the ``/_fake/`` control endpoints::

    python -m tests.fake_resend --port 0 --latency 2.0 --rate-limit 2
    # prints one line: {"url": "http://127.0.0.1:PORT"}
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import random
import re
import signal
import socket
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime
from email.utils import parseaddr
from types import FrameType, TracebackType
from typing import Any, Final, Self

import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

logger = logging.getLogger(__name__)

DEFAULT_API_KEY: Final = "re_test_key"
MAX_RECIPIENTS: Final = 50
MAX_IDEMPOTENCY_KEY_LENGTH: Final = 256

_ADDRESS = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")
_TAG_PART = re.compile(r"^[A-Za-z0-9_-]{1,256}$")

_DEFAULT_ERROR_NAMES: Final[dict[int, str]] = {
    400: "validation_error",
    401: "missing_api_key",
    403: "invalid_api_key",
    404: "not_found",
    405: "method_not_allowed",
    409: "concurrent_idempotent_requests",
    422: "validation_error",
    429: "rate_limit_exceeded",
    451: "security_error",
}

_DEFAULT_MESSAGES: Final[dict[str, str]] = {
    "missing_api_key": (
        "Missing API key in the authorization header. Include the following header "
        "in the request: Authorization: Bearer YOUR_API_KEY"
    ),
    "invalid_api_key": "API key is invalid.",
    "validation_error": "The request is invalid.",
    "not_found": "The requested endpoint does not exist.",
    "method_not_allowed": "Method is not allowed for the requested path.",
    "invalid_idempotency_key": "The key must be between 1-256 chars.",
    "invalid_idempotent_request": "Same idempotency key used with a different request payload.",
    "concurrent_idempotent_requests": (
        "Same idempotency key used while original request is still in progress."
    ),
    "rate_limit_exceeded": (
        "Too many requests. See rate limit response headers for more information."
    ),
    "daily_quota_exceeded": "You have reached your daily email sending quota.",
    "monthly_quota_exceeded": "You have reached your monthly email sending quota.",
    "security_error": "We may have found a security issue with the request.",
    "application_error": "An unexpected error occurred.",
}

_LOAD_BALANCER_PAGE: Final = (
    "<html><head><title>503 Service Temporarily Unavailable</title></head>"
    "<body><center><h1>503 Service Temporarily Unavailable</h1></center></body></html>"
)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class _ApiError(Exception):
    """An error answer in Resend's shape: ``{"statusCode", "name", "message"}``."""

    def __init__(
        self,
        status: int,
        name: str | None = None,
        message: str | None = None,
        *,
        retry_after: int | None = None,
        html: bool = False,
    ) -> None:
        self.status = status
        self.name = name or _DEFAULT_ERROR_NAMES.get(
            status, "application_error" if status >= 500 else "validation_error"
        )
        self.message = message or _DEFAULT_MESSAGES.get(self.name, "Simulated error.")
        # Every 429 tells the client when to come back, as Resend's do.
        self.retry_after = 1 if retry_after is None and status == 429 else retry_after
        self.html = html
        super().__init__(f"{status} {self.name}: {self.message}")

    def response(self, headers: Mapping[str, str]) -> Response:
        headers = dict(headers)
        if self.retry_after is not None:
            headers["retry-after"] = str(self.retry_after)
        if self.html:
            return HTMLResponse(_LOAD_BALANCER_PAGE, status_code=self.status, headers=headers)
        body = {"statusCode": self.status, "name": self.name, "message": self.message}
        return JSONResponse(body, status_code=self.status, headers=headers)


@dataclass(frozen=True)
class Fault:
    """One scripted answer, consumed by the next authenticated POST /emails.

    ``Fault(status=500)`` answers ``application_error``; ``Fault(status=429, retry_after=2)``
    answers ``rate_limit_exceeded`` with ``retry-after: 2``; ``name`` overrides the error name
    (``daily_quota_exceeded``, ``monthly_quota_exceeded``, ...); ``html=True`` answers a
    load balancer's HTML page instead of JSON. ``Fault(hold=5.0)`` (status 200) accepts and
    records the delivery at once, then keeps the response open for ``hold`` seconds: the
    client may time out, but the email was sent. On an error status ``hold`` only delays it.
    """

    status: int = 200
    name: str | None = None
    message: str | None = None
    retry_after: int | None = None
    hold: float = 0.0
    html: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.status, int) or not (
            self.status == 200 or 400 <= self.status <= 599
        ):
            raise ValueError(f"fault status must be 200 or 400..599, got {self.status!r}")
        if not _is_number(self.hold) or not 0 <= self.hold < math.inf:
            raise ValueError(f"fault hold must be a number >= 0, got {self.hold!r}")
        if self.retry_after is not None and (
            not isinstance(self.retry_after, int) or self.retry_after < 0
        ):
            raise ValueError(f"fault retry_after must be an int >= 0, got {self.retry_after!r}")

    def error(self) -> _ApiError | None:
        if self.status == 200:
            return None
        return _ApiError(
            self.status, self.name, self.message, retry_after=self.retry_after, html=self.html
        )


@dataclass(frozen=True)
class FakeConfig:
    """What the fake is set to now; change it with ``FakeResend.configure``."""

    api_key: str = DEFAULT_API_KEY
    latency: float = 0.0
    error_rate: float = 0.0
    error_status: int = 500
    rate_limit_per_second: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.api_key, str) or not self.api_key:
            raise ValueError("api_key must be a non-empty string")
        if not _is_number(self.latency) or not 0 <= self.latency < math.inf:
            raise ValueError(f"latency must be a number >= 0, got {self.latency!r}")
        if not _is_number(self.error_rate) or not 0 <= self.error_rate <= 1:
            raise ValueError(f"error_rate must be between 0 and 1, got {self.error_rate!r}")
        if not isinstance(self.error_status, int) or not 400 <= self.error_status <= 599:
            raise ValueError(f"error_status must be 400..599, got {self.error_status!r}")
        rate = self.rate_limit_per_second
        if rate is not None and (not _is_number(rate) or not 0 < rate < math.inf):
            raise ValueError(f"rate_limit_per_second must be > 0 or None, got {rate!r}")


@dataclass(frozen=True)
class Delivery:
    """An email the fake accepted: it counts as sent, exactly as Resend would send it."""

    id: str
    idempotency_key: str | None
    payload: dict[str, Any]
    to: list[str]
    received_at: float
    """``time.monotonic()`` when the request arrived (compare attempts' spacing with it)."""
    received_at_wall: float
    """``time.time()`` when the request arrived."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RequestRecord:
    """One answered API request (control endpoints are not recorded)."""

    method: str
    path: str
    status: int
    idempotency_key: str | None
    received_at: float
    received_at_wall: float


@dataclass
class _IdempotencyEntry:
    fingerprint: str
    email_id: str
    in_flight: bool = True


class _TokenBucket:
    """``rate`` requests per second with bursts up to ``max(1, rate)``."""

    def __init__(self, rate: float, now: float) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self.tokens = self.capacity
        self.updated = now

    def take(self, now: float) -> tuple[dict[str, str], int | None]:
        """Return the rate-limit headers, and the seconds to wait if no token was left."""
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        retry_after = None
        if self.tokens >= 1.0:
            self.tokens -= 1.0
        else:
            retry_after = max(1, math.ceil((1.0 - self.tokens) / self.rate))
        headers = {
            "ratelimit-limit": str(int(self.capacity)),
            "ratelimit-remaining": str(int(self.tokens)),
            "ratelimit-reset": str(math.ceil((self.capacity - self.tokens) / self.rate)),
        }
        return headers, retry_after


class FakeResend:
    """The fake's state: configuration, scripted faults, deliveries and counters.

    Every method is thread-safe: tests call them from their own thread while the server
    answers requests on its event loop in another one.
    """

    def __init__(
        self,
        *,
        api_key: str = DEFAULT_API_KEY,
        latency: float = 0.0,
        error_rate: float = 0.0,
        error_status: int = 500,
        rate_limit_per_second: float | None = None,
        seed: int = 0,
    ) -> None:
        self._initial_config = FakeConfig(
            api_key=api_key,
            latency=latency,
            error_rate=error_rate,
            error_status=error_status,
            rate_limit_per_second=rate_limit_per_second,
        )
        self._seed = seed
        self._lock = threading.Lock()
        self._clear()

    def _clear(self) -> None:
        self._config = self._initial_config
        self._bucket = self._new_bucket(self._config)
        self._random = random.Random(self._seed)
        self._faults: list[Fault] = []
        self._deliveries: list[Delivery] = []
        self._emails: dict[str, Delivery] = {}
        self._idempotency: dict[str, _IdempotencyEntry] = {}
        self._requests_total = 0
        self._by_status: Counter[int] = Counter()
        self._request_log: list[RequestRecord] = []
        self._in_flight = 0
        self._max_in_flight = 0

    @staticmethod
    def _new_bucket(config: FakeConfig) -> _TokenBucket | None:
        rate = config.rate_limit_per_second
        return None if rate is None else _TokenBucket(float(rate), time.monotonic())

    # -- configuration and faults --------------------------------------------------------

    @property
    def config(self) -> FakeConfig:
        with self._lock:
            return self._config

    def configure(self, **changes: Any) -> FakeConfig:
        """Change any of ``FakeConfig``'s fields now, e.g. ``configure(latency=2.0)``."""
        unknown = set(changes) - {f.name for f in fields(FakeConfig)}
        if unknown:
            raise ValueError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        with self._lock:
            config = replace(self._config, **changes)
            if config.rate_limit_per_second != self._config.rate_limit_per_second:
                self._bucket = self._new_bucket(config)
            self._config = config
            return config

    def enqueue_faults(self, faults: Iterable[Fault]) -> None:
        """Queue faults; each authenticated POST /emails consumes the next one, in order."""
        with self._lock:
            self._faults.extend(faults)

    @property
    def pending_faults(self) -> int:
        with self._lock:
            return len(self._faults)

    def reset(self) -> None:
        """Forget deliveries, counters, idempotency keys and faults; restore the initial config."""
        with self._lock:
            in_flight = self._in_flight  # requests still running will be answered later
            self._clear()
            self._in_flight = self._max_in_flight = in_flight

    # -- what happened -------------------------------------------------------------------

    @property
    def deliveries(self) -> list[Delivery]:
        with self._lock:
            return list(self._deliveries)

    @property
    def delivered_count(self) -> int:
        with self._lock:
            return len(self._deliveries)

    def deliveries_for(self, to_address: str) -> list[Delivery]:
        """Deliveries whose ``to`` holds this address (``Name <addr>`` forms match too)."""
        wanted = parseaddr(to_address)[1].lower()
        return [
            delivery
            for delivery in self.deliveries
            if any(parseaddr(to)[1].lower() == wanted for to in delivery.to)
        ]

    def duplicates(self) -> list[Delivery]:
        """Deliveries that repeat an earlier one: same idempotency key, or, when sent
        without a key, the same ``(to, subject, html, text)`` as an earlier delivery."""
        seen_keys: set[str] = set()
        seen_contents: set[tuple[object, ...]] = set()
        repeated = []
        for delivery in self.deliveries:
            payload = delivery.payload
            content = (
                tuple(delivery.to),
                payload.get("subject"),
                payload.get("html"),
                payload.get("text"),
            )
            key = delivery.idempotency_key
            if (key is not None and key in seen_keys) or (key is None and content in seen_contents):
                repeated.append(delivery)
            if key is not None:
                seen_keys.add(key)
            seen_contents.add(content)
        return repeated

    @property
    def requests_total(self) -> int:
        """API requests received (answered or not); control endpoints are not counted."""
        with self._lock:
            return self._requests_total

    @property
    def requests_by_status(self) -> dict[int, int]:
        with self._lock:
            return dict(self._by_status)

    @property
    def request_log(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._request_log)

    @property
    def in_flight(self) -> int:
        """POST /emails requests received and not answered yet."""
        with self._lock:
            return self._in_flight

    @property
    def max_in_flight(self) -> int:
        with self._lock:
            return self._max_in_flight

    def stats(self) -> dict[str, Any]:
        with self._lock:
            stats: dict[str, Any] = {
                "deliveries": len(self._deliveries),
                "requests": self._requests_total,
                "by_status": {str(status): n for status, n in sorted(self._by_status.items())},
                "in_flight": self._in_flight,
                "max_in_flight": self._max_in_flight,
                "pending_faults": len(self._faults),
            }
        stats["duplicates"] = len(self.duplicates())
        return stats

    async def wait_for_deliveries(self, n: int, timeout: float = 5.0) -> list[Delivery]:
        """Wait until at least ``n`` deliveries were recorded; ``TimeoutError`` otherwise."""
        deadline = time.monotonic() + timeout
        while (count := self.delivered_count) < n:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{count} deliveries after {timeout}s, expected {n}")
            await asyncio.sleep(0.01)
        return self.deliveries

    # -- used by the app -----------------------------------------------------------------

    def _request_received(self, *, send: bool) -> None:
        with self._lock:
            self._requests_total += 1
            if send:
                self._in_flight += 1
                self._max_in_flight = max(self._max_in_flight, self._in_flight)

    def _request_answered(
        self,
        request: Request,
        status: int,
        received: tuple[float, float],
        *,
        send: bool,
        idempotency_key: str | None = None,
    ) -> None:
        record = RequestRecord(request.method, request.url.path, status, idempotency_key, *received)
        with self._lock:
            self._by_status[status] += 1
            self._request_log.append(record)
            if send:
                self._in_flight -= 1

    def _take_rate_limit_token(self) -> dict[str, str]:
        with self._lock:
            if self._bucket is None:
                return {}
            headers, retry_after = self._bucket.take(time.monotonic())
        if retry_after is not None:
            raise _RateLimited(headers, retry_after)
        return headers

    def _next_fault(self) -> Fault | None:
        with self._lock:
            return self._faults.pop(0) if self._faults else None

    def _random_error(self) -> _ApiError | None:
        with self._lock:
            config = self._config
            if config.error_rate <= 0 or self._random.random() >= config.error_rate:
                return None
        return _ApiError(config.error_status)

    def _accept(
        self,
        payload: dict[str, Any],
        idempotency_key: str | None,
        received: tuple[float, float],
    ) -> tuple[str, bool]:
        """Record a delivery, or replay the one made with the same key.

        Returns the email id, and whether the key is now in flight (the caller must
        then call ``_idempotent_request_done`` once it answers).
        """
        fingerprint = ""
        if idempotency_key is not None:
            fingerprint = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        with self._lock:
            if idempotency_key is not None:
                entry = self._idempotency.get(idempotency_key)
                if entry is not None:
                    if entry.fingerprint != fingerprint:
                        raise _ApiError(409, "invalid_idempotent_request")
                    if entry.in_flight:
                        raise _ApiError(409, "concurrent_idempotent_requests")
                    return entry.email_id, False
            delivery = Delivery(
                id=str(uuid.uuid4()),
                idempotency_key=idempotency_key,
                payload=payload,
                to=_as_list(payload["to"]),
                received_at=received[0],
                received_at_wall=received[1],
            )
            self._deliveries.append(delivery)
            self._emails[delivery.id] = delivery
            if idempotency_key is None:
                return delivery.id, False
            self._idempotency[idempotency_key] = _IdempotencyEntry(fingerprint, delivery.id)
            return delivery.id, True

    def _idempotent_request_done(self, idempotency_key: str) -> None:
        with self._lock:
            entry = self._idempotency.get(idempotency_key)
            if entry is not None:
                entry.in_flight = False

    def _email(self, email_id: str) -> Delivery | None:
        with self._lock:
            return self._emails.get(email_id)


class _RateLimited(_ApiError):
    def __init__(self, headers: dict[str, str], retry_after: int) -> None:
        super().__init__(429, "rate_limit_exceeded", retry_after=retry_after)
        self.headers = headers


# -- request validation --------------------------------------------------------------------


def _as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _check_address(field_name: str, value: str) -> None:
    if not _ADDRESS.match(parseaddr(value)[1]):
        raise _ApiError(
            422,
            "validation_error",
            f"Invalid `{field_name}` field. The email address needs to follow the "
            "`email@example.com` or `Name <email@example.com>` format.",
        )


def _check_addresses(field_name: str, value: object, *, required: bool = False) -> None:
    if value is None:
        if required:
            raise _ApiError(422, "missing_required_field", f"Missing `{field_name}` field.")
        return
    if not isinstance(value, str | list) or not all(isinstance(v, str) for v in _as_list(value)):
        raise _ApiError(
            422, "validation_error", f"`{field_name}` must be a string or a list of strings."
        )
    addresses = _as_list(value)
    if required and not addresses:
        raise _ApiError(422, "missing_required_field", f"Missing `{field_name}` field.")
    if len(addresses) > MAX_RECIPIENTS:
        raise _ApiError(
            422,
            "validation_error",
            f"Too many recipients in `{field_name}`: at most {MAX_RECIPIENTS} are allowed.",
        )
    for address in addresses:
        _check_address(field_name, address)


def _check_tags(tags: object) -> None:
    message = (
        "`tags` must be a list of {name, value} objects; names and values may only contain "
        "ASCII letters, numbers, underscores or dashes, at most 256 characters."
    )
    if not isinstance(tags, list):
        raise _ApiError(422, "validation_error", message)
    for tag in tags:
        if not isinstance(tag, dict) or set(tag) - {"name", "value"}:
            raise _ApiError(422, "validation_error", message)
        for part in (tag.get("name"), tag.get("value", "")):
            if not isinstance(part, str) or (part and not _TAG_PART.match(part)):
                raise _ApiError(422, "validation_error", message)
        if not tag.get("name"):
            raise _ApiError(422, "validation_error", message)


def _check_optional_fields(payload: dict[str, Any]) -> None:
    for name in ("cc", "bcc", "reply_to"):
        _check_addresses(name, payload.get(name))
    headers = payload.get("headers")
    if headers is not None and (
        not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values())
    ):
        raise _ApiError(422, "validation_error", "`headers` must be an object of strings.")
    if payload.get("tags") is not None:
        _check_tags(payload["tags"])
    attachments = payload.get("attachments")
    if attachments is not None and (
        not isinstance(attachments, list)
        or not all(isinstance(a, dict) and ("content" in a or "path" in a) for a in attachments)
    ):
        raise _ApiError(422, "invalid_attachment", "Each attachment needs a `content` or a `path`.")
    scheduled_at = payload.get("scheduled_at")
    if scheduled_at is not None and not isinstance(scheduled_at, str):
        raise _ApiError(422, "validation_error", "`scheduled_at` must be a string.")


def _parse_email(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise _ApiError(400, "validation_error", "The request body is not valid JSON.") from None
    if not isinstance(payload, dict):
        raise _ApiError(422, "validation_error", "The request body must be a JSON object.")
    sender = payload.get("from")
    if sender is None or sender == "":
        raise _ApiError(422, "missing_required_field", "Missing `from` field.")
    if not isinstance(sender, str):
        raise _ApiError(422, "validation_error", "`from` must be a string.")
    _check_address("from", sender)
    _check_addresses("to", payload.get("to"), required=True)
    subject = payload.get("subject")
    if subject is None:
        raise _ApiError(422, "missing_required_field", "Missing `subject` field.")
    if not isinstance(subject, str):
        raise _ApiError(422, "validation_error", "`subject` must be a string.")
    html, text = payload.get("html"), payload.get("text")
    if html is None and text is None:
        raise _ApiError(422, "missing_required_field", "Missing `html` or `text` field.")
    if not isinstance(html, str | None) or not isinstance(text, str | None):
        raise _ApiError(422, "validation_error", "`html` and `text` must be strings.")
    _check_optional_fields(payload)
    return payload


def _check_idempotency_key(key: str | None) -> None:
    if key is not None and not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY_LENGTH:
        raise _ApiError(400, "invalid_idempotency_key")


def _authenticate(request: Request, api_key: str) -> None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _ApiError(401, "missing_api_key")
    if token.strip() != api_key:
        raise _ApiError(403, "invalid_api_key")


# -- the ASGI app ----------------------------------------------------------------------------


def _fake_of(request: Request) -> FakeResend:
    fake: FakeResend = request.app.state.fake
    return fake


def _received() -> tuple[float, float]:
    return time.monotonic(), time.time()


async def _pause(request: Request, delay: float) -> None:
    """Sleep ``delay`` seconds, or less if the server starts shutting down meanwhile."""
    if delay <= 0:
        return
    draining: asyncio.Event = request.app.state.draining
    try:
        async with asyncio.timeout(delay):
            await draining.wait()
    except TimeoutError:
        pass


async def _send_email(request: Request) -> Response:
    """POST /emails: Resend's send, with the configured latency and faults."""
    fake = _fake_of(request)
    config = fake.config
    received = _received()
    key = request.headers.get("idempotency-key")
    fake._request_received(send=True)
    headers: dict[str, str] = {}
    delay = config.latency
    key_in_flight = False
    try:
        _authenticate(request, config.api_key)
        headers = fake._take_rate_limit_token()
        fault = fake._next_fault()
        if fault is not None:
            delay += fault.hold
            if error := fault.error():
                raise error
        if error := fake._random_error():
            raise error
        _check_idempotency_key(key)
        payload = _parse_email(await request.body())
        email_id, key_in_flight = fake._accept(payload, key, received)
        response: Response = JSONResponse({"id": email_id}, headers=headers)
    except _RateLimited as limited:
        response = limited.response(limited.headers)
    except _ApiError as error:
        response = error.response(headers)
    try:
        await _pause(request, delay)
    finally:
        # Also when the client went away or the server stops: the email was sent, so a
        # retry with the same key must get the replayed answer, not a second delivery.
        if key_in_flight and key is not None:
            fake._idempotent_request_done(key)
        fake._request_answered(
            request, response.status_code, received, send=True, idempotency_key=key
        )
    return response


def _email_json(delivery: Delivery) -> dict[str, Any]:
    payload = delivery.payload
    created_at = datetime.fromtimestamp(delivery.received_at_wall, UTC)
    return {
        "object": "email",
        "id": delivery.id,
        "to": delivery.to,
        "from": payload["from"],
        "created_at": created_at.isoformat(),
        "subject": payload["subject"],
        "html": payload.get("html"),
        "text": payload.get("text"),
        "cc": _as_list(payload["cc"]) if payload.get("cc") else None,
        "bcc": _as_list(payload["bcc"]) if payload.get("bcc") else None,
        "reply_to": _as_list(payload["reply_to"]) if payload.get("reply_to") else None,
        "tags": payload.get("tags"),
        "scheduled_at": payload.get("scheduled_at"),
        "last_event": "sent",
    }


async def _read_emails(request: Request) -> Response:
    """GET /emails and GET /emails/{id}: the emails this fake sent."""
    fake = _fake_of(request)
    received = _received()
    fake._request_received(send=False)
    headers: dict[str, str] = {}
    try:
        _authenticate(request, fake.config.api_key)
        headers = fake._take_rate_limit_token()
        email_id = request.path_params.get("email_id")
        if email_id is None:
            data = [_email_json(d) for d in reversed(fake.deliveries)]
            body: dict[str, Any] = {"object": "list", "has_more": False, "data": data}
        elif (delivery := fake._email(email_id)) is not None:
            body = _email_json(delivery)
        else:
            raise _ApiError(404, "not_found", "Email not found.")
        response: Response = JSONResponse(body, headers=headers)
    except _RateLimited as limited:
        response = limited.response(limited.headers)
    except _ApiError as error:
        response = error.response(headers)
    fake._request_answered(request, response.status_code, received, send=False)
    return response


async def _http_error(request: Request, exc: Exception) -> Response:
    """Unknown route (404) or wrong method (405), answered in Resend's error shape."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    response = _ApiError(status).response({})
    if not request.url.path.startswith("/_fake/"):
        fake = _fake_of(request)
        received = _received()
        fake._request_received(send=False)
        fake._request_answered(request, status, received, send=False)
    return response


async def _control_stats(request: Request) -> Response:
    """GET /_fake/stats: counters for a benchmark or a test in another process."""
    return JSONResponse(_fake_of(request).stats())


async def _control_deliveries(request: Request) -> Response:
    """GET /_fake/deliveries: every recorded delivery, oldest first."""
    return JSONResponse([d.to_json() for d in _fake_of(request).deliveries])


async def _control_config(request: Request) -> Response:
    """GET or POST /_fake/config: read or change latency, error_rate, rate limit, key."""
    fake = _fake_of(request)
    if request.method == "POST":
        try:
            changes = json.loads(await request.body())
            if not isinstance(changes, dict):
                raise ValueError("expected a JSON object")
            fake.configure(**changes)
        except (ValueError, TypeError) as error:
            return _ApiError(400, "validation_error", str(error)).response({})
    return JSONResponse(asdict(fake.config))


async def _control_faults(request: Request) -> Response:
    """POST /_fake/faults: queue a JSON list of faults (``Fault``'s fields)."""
    fake = _fake_of(request)
    try:
        items = json.loads(await request.body())
        if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
            raise ValueError("expected a JSON list of objects")
        faults = [Fault(**item) for item in items]
    except (ValueError, TypeError) as error:
        return _ApiError(400, "validation_error", str(error)).response({})
    fake.enqueue_faults(faults)
    return JSONResponse({"pending_faults": fake.pending_faults})


async def _control_reset(request: Request) -> Response:
    """POST /_fake/reset: forget everything and restore the initial configuration."""
    fake = _fake_of(request)
    fake.reset()
    return JSONResponse(fake.stats())


def build_app(fake: FakeResend, draining: asyncio.Event | None = None) -> Starlette:
    """The ASGI app serving ``fake`` (also usable with ``httpx.ASGITransport``).

    Setting ``draining`` answers every delayed or held request at once (server shutdown).
    """
    app = Starlette(
        routes=[
            Route("/emails", _send_email, methods=["POST"]),
            Route("/emails", _read_emails, methods=["GET"]),
            Route("/emails/{email_id}", _read_emails, methods=["GET"]),
            Route("/_fake/stats", _control_stats, methods=["GET"]),
            Route("/_fake/deliveries", _control_deliveries, methods=["GET"]),
            Route("/_fake/config", _control_config, methods=["GET", "POST"]),
            Route("/_fake/faults", _control_faults, methods=["POST"]),
            Route("/_fake/reset", _control_reset, methods=["POST"]),
        ],
        exception_handlers={404: _http_error, 405: _http_error},
    )
    app.state.fake = fake
    app.state.draining = draining or asyncio.Event()
    return app


# -- running it ------------------------------------------------------------------------------


class _ThreadServer(uvicorn.Server):
    """A uvicorn server that tells another thread when it accepts connections, and that
    answers held requests at once when it stops instead of cancelling them."""

    def __init__(self, config: uvicorn.Config, draining: asyncio.Event) -> None:
        super().__init__(config)
        self.ready = threading.Event()
        self.draining = draining

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self.ready.set()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.draining.set()
        await super().shutdown(sockets=sockets)


@dataclass
class FakeResendServer:
    """Serve a ``FakeResend`` with uvicorn on a background thread (its own event loop).

    Use it as a context manager, sync or async; ``url`` and ``fake`` are ready inside.
    Port 0 picks a free port.
    """

    fake: FakeResend = field(default_factory=FakeResend)
    host: str = "127.0.0.1"
    port: int = 0
    startup_timeout: float = 10.0
    _server: _ThreadServer | None = field(default=None, init=False, repr=False)
    _thread: threading.Thread | None = field(default=None, init=False, repr=False)

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the server is not running")
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("the server is already running")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        draining = asyncio.Event()
        config = uvicorn.Config(
            build_app(self.fake, draining),
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=1,
            # Longer than clients' idle pools keep connections, so a benchmark never races
            # the server closing an idle keep-alive connection.
            timeout_keep_alive=60,
        )
        server = _ThreadServer(config, draining)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="fake-resend", daemon=True
        )
        self._server, self._thread = server, thread
        thread.start()
        deadline = time.monotonic() + self.startup_timeout
        while not server.ready.wait(timeout=0.05):
            if not thread.is_alive() or time.monotonic() >= deadline:
                self.stop()
                sock.close()
                raise RuntimeError(f"fake Resend did not start on {self.host}:{self.port}")
        logger.info("fake Resend listening on %s", self.url)

    def stop(self, timeout: float = 5.0) -> None:
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.should_exit = True
        thread.join(timeout)
        if thread.is_alive():
            server.force_exit = True
            thread.join(timeout)
            logger.warning("fake Resend thread still alive after %.1fs", 2 * timeout)
        self._server = self._thread = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.fake_resend", description="Run a fake Resend API."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--api-key", default=DEFAULT_API_KEY)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per POST /emails")
    parser.add_argument("--rate-limit", type=float, default=None, help="requests per second")
    parser.add_argument("--error-rate", type=float, default=0.0, help="0..1")
    parser.add_argument("--error-status", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--log-level", default="WARNING")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Serve until SIGTERM or SIGINT; the only stdout output is one JSON line with the URL."""
    args = _parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr)
    fake = FakeResend(
        api_key=args.api_key,
        latency=args.latency,
        error_rate=args.error_rate,
        error_status=args.error_status,
        rate_limit_per_second=args.rate_limit,
        seed=args.seed,
    )
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    with FakeResendServer(fake, host=args.host, port=args.port) as server:
        sys.stdout.write(json.dumps({"url": server.url}) + "\n")
        sys.stdout.flush()
        stop.wait()
        logger.info("stopping fake Resend")


if __name__ == "__main__":
    main()
