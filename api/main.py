"""The HTTP API: validates, starts a workflow, answers 202 without waiting for the provider."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from temporalio.service import RPCError

from api.deps import API_KEY_SCHEME, app_settings
from api.docs import install_offline_docs
from api.metrics import MetricsMiddleware, metrics_endpoint
from api.routes import codec, emails, health, invites, outbox, webhooks
from api.security import RequestGuard
from api.temporal import TemporalUnavailable
from infra.temporal_client import API_RETRY, connect
from observability import configure_logging

log = logging.getLogger("durable_mail.api")
# Honest about the one case we cannot rule out: a start that timed out may have been
# recorded. A retry with the same Idempotency-Key is safe either way; one without is not.
UNAVAILABLE_DETAIL = (
    "email service temporarily unavailable: not accepted. Retry with the same "
    "Idempotency-Key (a timed-out request may have been recorded; the key makes the retry safe)"
)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    configure_logging()
    settings = app_settings(app)
    if not settings.api_key_list:
        raise RuntimeError("API_KEYS is empty: set at least one bearer key (comma-separated)")
    # Lazy: the API starts (and answers 503) even while Temporal is down. A client set
    # before startup (tests, an embedding process) is kept.
    if getattr(app.state, "temporal", None) is None:
        app.state.temporal = await connect(settings, lazy=True, retry_config=API_RETRY)
    yield


def create_app() -> FastAPI:
    app = FastAPI(
        title="durable-mail",
        version="0.1.0",
        description="Accept transactional email in milliseconds; deliver it exactly once.",
        lifespan=lifespan,
        docs_url=None,  # served without a CDN by install_offline_docs
        redoc_url=None,
    )
    install_offline_docs(app)
    app.include_router(invites.router, dependencies=[API_KEY_SCHEME])
    app.include_router(emails.router, dependencies=[API_KEY_SCHEME])
    app.include_router(health.router)
    app.include_router(outbox.router)
    app.include_router(codec.router)
    app.include_router(webhooks.router)
    app.add_route("/metrics", metrics_endpoint, include_in_schema=False)
    # Outermost: refuses unauthenticated, too-fast and too-large requests before parsing.
    app.add_middleware(RequestGuard, settings=lambda: app_settings(app))
    # Outside the guard, so refusals are counted too.
    app.add_middleware(MetricsMiddleware)

    @app.exception_handler(TemporalUnavailable)
    async def temporal_unavailable(request: Request, exc: TemporalUnavailable) -> JSONResponse:
        log.warning("temporal unavailable on %s %s", request.method, request.url.path)
        return JSONResponse(
            {"detail": UNAVAILABLE_DETAIL},
            status_code=503,
            headers={"Retry-After": "1"},
        )

    @app.exception_handler(RPCError)
    async def temporal_error(request: Request, exc: RPCError) -> JSONResponse:
        log.error("temporal error on %s %s: %s", request.method, request.url.path, exc.status)
        return JSONResponse(
            {"detail": UNAVAILABLE_DETAIL},
            status_code=503,
            headers={"Retry-After": "1"},
        )

    return app


app = create_app()
