"""Resend's error answers: `{"statusCode", "name", "message"}`, with the names and messages
the real API uses (see /work/shared/reference/resend-and-temporal.md §1)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from starlette.responses import HTMLResponse, JSONResponse, Response

DEFAULT_ERROR_NAMES: Final[dict[int, str]] = {
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

DEFAULT_MESSAGES: Final[dict[str, str]] = {
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

LOAD_BALANCER_PAGE: Final = (
    "<html><head><title>503 Service Temporarily Unavailable</title></head>"
    "<body><center><h1>503 Service Temporarily Unavailable</h1></center></body></html>"
)


class ApiError(Exception):
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
        self.name = name or DEFAULT_ERROR_NAMES.get(
            status, "application_error" if status >= 500 else "validation_error"
        )
        self.message = message or DEFAULT_MESSAGES.get(self.name, "Simulated error.")
        # Every 429 tells the client when to come back, as Resend's do.
        self.retry_after = 1 if retry_after is None and status == 429 else retry_after
        self.html = html
        super().__init__(f"{status} {self.name}: {self.message}")

    def response(self, headers: Mapping[str, str]) -> Response:
        headers = dict(headers)
        if self.retry_after is not None:
            headers["retry-after"] = str(self.retry_after)
        if self.html:
            return HTMLResponse(LOAD_BALANCER_PAGE, status_code=self.status, headers=headers)
        body = {"statusCode": self.status, "name": self.name, "message": self.message}
        return JSONResponse(body, status_code=self.status, headers=headers)


class RateLimited(ApiError):
    """A 429 from the rate limiter, with the rate-limit headers of the answer."""

    def __init__(self, headers: dict[str, str], retry_after: int) -> None:
        super().__init__(429, "rate_limit_exceeded", retry_after=retry_after)
        self.headers = headers
