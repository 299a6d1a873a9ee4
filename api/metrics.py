"""Prometheus metrics of the API: requests by route and status, and their latency.

A plain ASGI middleware (no per-request task or body buffering) labels each request with
its route template (`/v1/emails/{email_id}`), never the raw path, so ids do not explode the
label set.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUESTS = Counter(
    "durable_mail_http_requests_total", "HTTP requests", ["method", "route", "status"]
)
LATENCY = Histogram(
    "durable_mail_http_request_duration_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
WEBHOOK_EVENTS = Counter(
    "durable_mail_webhook_events_total", "Provider webhook events", ["type", "outcome"]
)


class MetricsMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status_code = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route: Any = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "")
            REQUESTS.labels(method, template, str(status_code)).inc()
            LATENCY.labels(method, template).observe(time.perf_counter() - started)


async def metrics_endpoint(_request: Request) -> Response:
    """Prometheus exposition of this process's metrics."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
