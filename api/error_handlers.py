"""The one place the send service's domain errors become HTTP answers."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse

from api.errors import (
    Conflict,
    Forbidden,
    Gone,
    InvalidField,
    InvalidRequest,
    NotConfigured,
    NotConfirmed,
    NotFound,
    NotRecorded,
    SenderNotAllowed,
    SendError,
    TooManyAttempts,
    Unavailable,
)
from observability import redact_addresses

log = logging.getLogger("durable_mail.api")

STATUS_CODES: dict[type[SendError], int] = {
    NotFound: status.HTTP_404_NOT_FOUND,
    Forbidden: status.HTTP_403_FORBIDDEN,
    Conflict: status.HTTP_409_CONFLICT,
    InvalidRequest: status.HTTP_400_BAD_REQUEST,
    Gone: status.HTTP_410_GONE,
    TooManyAttempts: status.HTTP_429_TOO_MANY_REQUESTS,
    NotConfigured: status.HTTP_503_SERVICE_UNAVAILABLE,
}
# Honest about the one case we cannot rule out: a start that timed out may have been
# recorded. A retry with the same Idempotency-Key is safe either way; one without is not.
UNAVAILABLE_DETAIL = (
    "email service temporarily unavailable: not accepted. Retry with the same "
    "Idempotency-Key (a timed-out request may have been recorded; the key makes the retry safe)"
)
# A read, a list or a cancel changed nothing: there is no key to speak of.
READ_UNAVAILABLE_DETAIL = "email service temporarily unavailable; retry shortly"


async def send_error(request: Request, exc: Exception) -> JSONResponse:
    """404, 409 or 400 with the error's own (caller-safe) message."""
    assert isinstance(exc, SendError)
    code = next(STATUS_CODES[c] for c in type(exc).__mro__ if c in STATUS_CODES)
    return JSONResponse({"detail": exc.detail}, status_code=code)


async def invalid_field(request: Request, exc: Exception) -> JSONResponse:
    """422 shaped like FastAPI's validation errors, for checks that need runtime config."""
    assert isinstance(exc, InvalidField)
    error = {"type": "value_error", "loc": ["body", exc.field], "msg": exc.detail}
    return JSONResponse({"detail": [error]}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


async def sender_not_allowed(request: Request, exc: Exception) -> JSONResponse:
    """422 shaped like every other validation error: the field, and what is allowed."""
    assert isinstance(exc, SenderNotAllowed)
    loc = ["body", exc.field] if exc.field else ["body"]
    error = {"type": "sender_not_allowed", "loc": loc, "msg": exc.detail}
    return JSONResponse({"detail": [error]}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


async def unavailable(request: Request, exc: Exception) -> JSONResponse:
    """503 and Retry-After: Temporal did not record or answer (the reason is only logged)."""
    path = redact_addresses(request.url.path)  # `/suppressions/{address}` names a recipient
    log.warning("temporal unavailable on %s %s: %s", request.method, path, exc)
    detail = READ_UNAVAILABLE_DETAIL
    if isinstance(exc, NotRecorded):
        detail = UNAVAILABLE_DETAIL
    elif isinstance(exc, NotConfirmed):
        detail = exc.detail
    return JSONResponse(
        {"detail": detail},
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": "1"},
    )


def register(app: FastAPI) -> None:
    """Answer every domain error of the service (Starlette picks the most specific class)."""
    app.add_exception_handler(Unavailable, unavailable)
    app.add_exception_handler(InvalidField, invalid_field)
    app.add_exception_handler(SenderNotAllowed, sender_not_allowed)
    for error in STATUS_CODES:
        app.add_exception_handler(error, send_error)
