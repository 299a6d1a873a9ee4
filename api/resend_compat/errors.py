"""Every error of the Resend-compatible surface, in Resend's format, in one place.

`{"statusCode", "name", "message"}` with the names Resend uses, so its SDKs raise the
exceptions apps already handle (`ValidationError`, `MissingRequiredFieldsError`,
`MissingApiKeyError`, `InvalidApiKeyError`, `RateLimitError`, `ResendError` with its
`error_type`). Three sources: the send service's domain errors, request validation, and the
guard's refusals (no key, bad key, rate limit, body too large). `/v1` keeps its own format
(`api.error_handlers`): this mapping applies to `ResendRoute` routes and `SURFACE` only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from api.error_handlers import READ_UNAVAILABLE_DETAIL, UNAVAILABLE_DETAIL
from api.errors import (
    IdempotencyKeyReused,
    InvalidIdempotencyKey,
    InvalidRequest,
    NotCancellable,
    NotConfirmed,
    NotFound,
    NotRecorded,
    NotReschedulable,
    SenderNotAllowed,
    SendError,
    Unavailable,
)
from api.resend_compat.schemas import ResendErrorBody
from api.security import Answer, Refusal, Refused, Surface

log = logging.getLogger("durable_mail.api")

# The paths this surface answers at the API's root, as Resend does: its APIs we serve, and
# those we do not (answered in its format too, see `unserved`).
PREFIXES = (
    "/emails",
    "/suppressions",
    "/webhooks",
    "/api-keys",
    "/audiences",
    "/automations",
    "/broadcasts",
    "/contact-properties",
    "/contacts",
    "/domains",
    "/events",
    "/inboxes",
    "/logs",
    "/oauth",
    "/segments",
    "/templates",
    "/topics",
    "/usage",
)

# Domain error -> (HTTP status, Resend's name); the most specific class wins.
DOMAIN_ERRORS: dict[type[SendError], tuple[int, str]] = {
    Unavailable: (503, "application_error"),
    NotFound: (404, "not_found"),
    IdempotencyKeyReused: (409, "invalid_idempotent_request"),
    InvalidIdempotencyKey: (400, "invalid_idempotency_key"),
    # Resend answers a `from` outside the account's verified domains this way.
    SenderNotAllowed: (403, "validation_error"),
    NotCancellable: (422, "validation_error"),
    NotReschedulable: (422, "validation_error"),
    InvalidRequest: (400, "validation_error"),
    SendError: (400, "validation_error"),
}
MISSING_API_KEY = (
    "Missing API key in the authorization header. Include the following header "
    "in the request: Authorization: Bearer YOUR_API_KEY"
)


def error(status: int, name: str, message: str, headers: dict[str, str] | None = None) -> Answer:
    return Answer(status, {"statusCode": status, "name": name, "message": message}, headers or {})


def as_response(answer: Answer) -> JSONResponse:
    return JSONResponse(answer.body, status_code=answer.status, headers=answer.headers)


def domain_error(exc: SendError) -> Answer:
    """A refusal of the send service; 503 says nothing was accepted (never a false id)."""
    status, name = next(DOMAIN_ERRORS[c] for c in type(exc).__mro__ if c in DOMAIN_ERRORS)
    if isinstance(exc, Unavailable):
        log.warning("temporal unavailable (Resend-compatible API): %s", exc)
        # Only a send that was not recorded has an Idempotency-Key to retry with; a read,
        # a reschedule or a cancel changed nothing, or says itself what it may have done.
        message = READ_UNAVAILABLE_DETAIL
        if isinstance(exc, NotRecorded):
            message = UNAVAILABLE_DETAIL
        elif isinstance(exc, NotConfirmed):
            message = exc.detail
        return error(status, name, message, {"retry-after": "1"})
    if isinstance(exc, SenderNotAllowed):
        return error(status, name, f"Invalid `from` field: {exc.detail}.")
    return error(status, name, exc.detail)


def validation_error(errors: Sequence[Any]) -> Answer:
    """The first problem of the request, named by its top-level field (values never echoed)."""
    first = next((e for e in errors if e["type"] == "missing"), errors[0])
    path = [str(part) for part in first["loc"][1:2]]  # skip "body"; the top-level field
    field = path[0] if path else "body"
    kind: str = first["type"]
    if kind == "json_invalid":
        return error(400, "validation_error", "The request body is not valid JSON.")
    if kind == "missing":
        return error(422, "missing_required_field", f"Missing `{field}` field.")
    if kind == "extra_forbidden":
        return error(422, "validation_error", f"`{field}` is not supported by durable-mail.")
    message = str(first["msg"]).removeprefix("Value error, ")
    if field == "attachments":
        return error(422, "invalid_attachment", f"Invalid `attachments` field: {message}")
    if field == "body":  # a rule about several fields (the model's own validator)
        return error(422, "validation_error", f"Invalid request: {message}")
    return error(422, "validation_error", f"Invalid `{field}` field: {message}")


def guard_refusal(refused: Refused) -> Answer:
    """The guard's refusals (before any parsing) in Resend's words."""
    match refused.refusal:
        case Refusal.MISSING_KEY | Refusal.EMPTY_KEY:
            return error(401, "missing_api_key", MISSING_API_KEY)
        case Refusal.INVALID_KEY:
            return error(403, "invalid_api_key", "API key is invalid.")
        case Refusal.RATE_LIMITED | Refusal.AUTH_THROTTLED:
            message = "Too many requests. Retry after the number of seconds in `retry-after`."
            return error(
                429, "rate_limit_exceeded", message, {"retry-after": str(refused.retry_after)}
            )
        case Refusal.TOO_LARGE:
            message = f"The request body is larger than {refused.max_bytes} bytes."
            return error(413, "validation_error", message)


SURFACE = Surface(PREFIXES, guard_refusal)


class Answered(Exception):
    """An error answer of this surface already worded (a batch refused for one email)."""

    def __init__(self, answer: Answer) -> None:
        super().__init__(answer.body.get("message", ""))
        self.answer = answer


class ResendRoute(APIRoute):
    """A route whose validation and domain errors are answered in Resend's format."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def answer_like_resend(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                return as_response(validation_error(exc.errors()))
            except SendError as exc:
                return as_response(domain_error(exc))
            except Answered as exc:
                return as_response(exc.answer)

        return answer_like_resend


# OpenAPI: what every route of this surface can answer besides its success.
RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ResendErrorBody} for code in (400, 401, 403, 404, 409, 413, 422, 429, 503)
}
