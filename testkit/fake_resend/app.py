"""The fake's HTTP API: Resend's `/emails` routes (`/emails/batch` included), and `/_fake/*`
control routes that a test or a benchmark in another process drives (see
`client.FakeResendClient`)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from testkit.fake_resend.errors import ApiError, RateLimited
from testkit.fake_resend.faults import Fault
from testkit.fake_resend.store import Delivery, FakeResend
from testkit.fake_resend.validation import (
    BATCH_VALIDATION_MODES,
    as_list,
    check_batch_item,
    check_idempotency_key,
    parse_batch,
    parse_email,
)

# What a send route does once the request passed auth, rate limit and faults: the answer's
# body, and whether its idempotency key is now in flight.
Accept = Callable[[FakeResend, bytes, str | None, Fault | None], Awaitable[tuple[Any, bool]]]


def _fake_of(request: Request) -> FakeResend:
    fake: FakeResend = request.app.state.fake
    return fake


def _received() -> tuple[float, float]:
    return time.monotonic(), time.time()


def _authenticate(request: Request, api_key: str) -> None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "missing_api_key")
    if token.strip() != api_key:
        raise ApiError(403, "invalid_api_key")


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
    received = _received()

    async def accept(
        fake: FakeResend, body: bytes, key: str | None, fault: Fault | None
    ) -> tuple[Any, bool]:
        email_id, key_in_flight = fake.accept(parse_email(body), key, received)
        return {"id": email_id}, key_in_flight

    return await _send(request, received, accept)


async def _send_batch(request: Request) -> Response:
    """POST /emails/batch: up to 100 emails in one call, `x-batch-validation` strict (one
    invalid email refuses the call) or permissive (the invalid ones are refused by index)."""
    received = _received()
    mode = request.headers.get("x-batch-validation", "strict")

    async def accept(
        fake: FakeResend, body: bytes, key: str | None, fault: Fault | None
    ) -> tuple[Any, bool]:
        if mode not in BATCH_VALIDATION_MODES:
            raise ApiError(422, "validation_error", "Invalid `x-batch-validation` header.")
        payload = parse_batch(body)
        refused: dict[int, str] = {}
        for index, item in enumerate(payload):
            try:
                check_batch_item(item)
                if fault is not None and index in fault.invalid_items:
                    raise ApiError(422, "validation_error", "Invalid `to` field.")
            except ApiError as error:
                if mode == "strict":
                    message = f"emails[{index}]: {error.message}"
                    raise ApiError(error.status, error.name, message) from None
                refused[index] = error.message
        return fake.accept_batch(payload, refused, key, received)

    return await _send(request, received, accept)


async def _send(request: Request, received: tuple[float, float], accept: Accept) -> Response:
    """A send route: authentication, rate limit, faults, then `accept`; the configured latency
    (and a fault's hold) before the answer."""
    fake = _fake_of(request)
    config = fake.config
    key = request.headers.get("idempotency-key")
    fake.request_received(send=True)
    headers: dict[str, str] = {}
    delay = config.latency
    key_in_flight = False
    try:
        _authenticate(request, config.api_key)
        headers = fake.take_rate_limit_token()
        fault = fake.next_fault()
        if fault is not None:
            delay += fault.hold
            if error := fault.error():
                raise error
        if error := fake.random_error():
            raise error
        check_idempotency_key(key)
        answer, key_in_flight = await accept(fake, await request.body(), key, fault)
        response: Response = JSONResponse(answer, headers=headers)
    except RateLimited as limited:
        response = limited.response(limited.headers)
    except ApiError as error:
        response = error.response(headers)
    try:
        await _pause(request, delay)
    finally:
        # Also when the client went away or the server stops: the email was sent, so a
        # retry with the same key must get the replayed answer, not a second delivery.
        if key_in_flight and key is not None:
            fake.idempotent_request_done(key)
        fake.request_answered(
            request.method,
            request.url.path,
            response.status_code,
            received,
            send=True,
            idempotency_key=key,
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
        "cc": as_list(payload["cc"]) if payload.get("cc") else None,
        "bcc": as_list(payload["bcc"]) if payload.get("bcc") else None,
        "reply_to": as_list(payload["reply_to"]) if payload.get("reply_to") else None,
        "tags": payload.get("tags"),
        "scheduled_at": payload.get("scheduled_at"),
        "last_event": "sent",
    }


async def _read_emails(request: Request) -> Response:
    """GET /emails and GET /emails/{id}: the emails this fake sent."""
    fake = _fake_of(request)
    received = _received()
    fake.request_received(send=False)
    headers: dict[str, str] = {}
    try:
        _authenticate(request, fake.config.api_key)
        headers = fake.take_rate_limit_token()
        email_id = request.path_params.get("email_id")
        if email_id is None:
            data = [_email_json(d) for d in reversed(fake.deliveries)]
            body: dict[str, Any] = {"object": "list", "has_more": False, "data": data}
        elif (delivery := fake.email(email_id)) is not None:
            body = _email_json(delivery)
        else:
            raise ApiError(404, "not_found", "Email not found.")
        response: Response = JSONResponse(body, headers=headers)
    except RateLimited as limited:
        response = limited.response(limited.headers)
    except ApiError as error:
        response = error.response(headers)
    fake.request_answered(
        request.method, request.url.path, response.status_code, received, send=False
    )
    return response


async def _http_error(request: Request, exc: Exception) -> Response:
    """Unknown route (404) or wrong method (405), answered in Resend's error shape."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    response = ApiError(status).response({})
    if not request.url.path.startswith("/_fake/"):
        fake = _fake_of(request)
        received = _received()
        fake.request_received(send=False)
        fake.request_answered(request.method, request.url.path, status, received, send=False)
    return response


# -- control routes --------------------------------------------------------------------------


async def _control_stats(request: Request) -> Response:
    """GET /_fake/stats: counters for a benchmark or a test in another process."""
    return JSONResponse(_fake_of(request).stats().to_json())


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
            return ApiError(400, "validation_error", str(error)).response({})
    return JSONResponse(fake.config.to_json())


async def _control_faults(request: Request) -> Response:
    """POST /_fake/faults: queue a JSON list of faults (``Fault``'s fields)."""
    fake = _fake_of(request)
    try:
        items = json.loads(await request.body())
        if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
            raise ValueError("expected a JSON list of objects")
        faults = [Fault(**item) for item in items]
    except (ValueError, TypeError) as error:
        return ApiError(400, "validation_error", str(error)).response({})
    fake.enqueue_faults(faults)
    return JSONResponse({"pending_faults": fake.pending_faults})


async def _control_reset(request: Request) -> Response:
    """POST /_fake/reset: forget everything and restore the initial configuration."""
    fake = _fake_of(request)
    fake.reset()
    return JSONResponse(fake.stats().to_json())


def build_app(fake: FakeResend, draining: asyncio.Event | None = None) -> Starlette:
    """The ASGI app serving ``fake`` (also usable with ``httpx.ASGITransport``).

    Setting ``draining`` answers every delayed or held request at once (server shutdown).
    """
    app = Starlette(
        routes=[
            Route("/emails", _send_email, methods=["POST"]),
            Route("/emails/batch", _send_batch, methods=["POST"]),
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
