"""The HTTP API: validates, starts a workflow, answers 202 without waiting for the provider.

`create_app(settings)` builds it; `app` is the process's instance for `uvicorn api.main:app`
(settings from the environment, Temporal connected by the lifespan).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send
from temporalio.client import Client

from activities.templating import Templates
from api import error_handlers
from api.deps import API_KEY_SCHEME, get_operator
from api.docs import install_offline_docs
from api.idempotency import IdKeys
from api.metrics import MetricsMiddleware, metrics_endpoint
from api.resend_compat import errors as resend_errors
from api.resend_compat import routes as resend_compat
from api.routes import (
    batches,
    codec,
    dev_accept,
    emails,
    health,
    invites,
    outbox,
    suppressions,
    webhook_endpoints,
    webhooks,
)
from api.security import RequestGuard, is_open, route_path
from config import Settings, get_settings, weak_secret_problem
from infra.temporal_client import API_RETRY, connect, encryption_problem, warn_if_plaintext
from observability import configure_logging, protect_logs

log = logging.getLogger("durable_mail.api")

OPENAPI_TAGS = [
    {
        "name": resend_compat.TAG,
        "description": "Resend's email API at the root (`/emails`), in Resend's shapes and error "
        "format: point a Resend SDK's base URL here and its sends become durable. "
        "See docs/resend-drop-in.md.",
    }
]


def startup_problem(settings: Settings) -> str | None:
    """Why the API must not start, in one line (None: it may)."""
    if problem := encryption_problem(settings):
        return problem
    if not settings.api_key_list and not settings.tenants:
        return "no API key: set API_KEYS (operator keys) or TENANTS / TENANTS_FILE"
    if problem := weak_secret_problem(settings):
        return problem
    try:
        settings.operator_sender_domains  # noqa: B018 (EMAIL_FROM and SENDER_DOMAINS parse)
    except ValueError as err:
        return f"EMAIL_FROM or SENDER_DOMAINS: {err}"
    return None


class RefuseUnsafeStartup:
    """Fails the server's startup with one line when the configuration is unsafe.

    It answers the ASGI lifespan itself, so uvicorn logs exactly that line and exits
    non-zero (an exception in the lifespan would log a traceback around it).
    """

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan" and (problem := startup_problem(self.settings)):
            await receive()  # lifespan.startup
            await send({"type": "lifespan.startup.failed", "message": problem})
            return
        await self.app(scope, receive, send)


class ConnectOnFirstUse:
    """Connects the app's Temporal client at its first request if no lifespan did.

    Mounted in another app (`Mount("/mail", app)`), an app's own lifespan never runs
    (Starlette runs the outer app's only): this connects it anyway, once, and applies the
    startup checks the lifespan would have (a misconfigured app answers 503 naming the
    problem, never its value, on every route but the open ones: probes and docs).
    """

    def __init__(self, app: ASGIApp, fastapi_app: FastAPI) -> None:
        self.app = app
        self.state = fastapi_app.state
        self.lock = asyncio.Lock()
        self.problem: str | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.state.temporal_client is None:
            async with self.lock:
                if self.state.temporal_client is None and self.problem is None:
                    await self._connect()
            if self.problem is not None and not is_open(route_path(scope)):
                await JSONResponse({"detail": self.problem}, status_code=503)(scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _connect(self) -> None:
        settings: Settings = self.state.settings
        if problem := startup_problem(settings):
            log.error("refusing requests: %s", problem)
            self.problem = f"durable-mail is not configured: {problem}"
            return
        warn_if_plaintext(settings)
        self.state.temporal_client = await connect(settings, lazy=True, retry_config=API_RETRY)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    configure_logging()
    settings: Settings = app.state.settings
    warn_if_plaintext(settings)
    # Lazy: the API starts (and answers 503) even while Temporal is down.
    if app.state.temporal_client is None:
        app.state.temporal_client = await connect(settings, lazy=True, retry_config=API_RETRY)
    yield


def create_app(
    settings: Settings | None = None, *, temporal_client: Client | None = None
) -> FastAPI:
    """The API with these settings (default: the environment's) and Temporal client
    (default: one the lifespan connects; pass one to share it, e.g. in-process)."""
    settings = settings or get_settings()
    protect_logs()  # mounted in another app, our lifespan (and its logging setup) never runs
    if not encryption_problem(settings):
        IdKeys.install(settings)  # the keys of public ids (the startup refuses otherwise)
    app = FastAPI(
        title="durable-mail",
        version="0.1.0",
        description="Accept transactional email in milliseconds; deliver it exactly once.",
        lifespan=lifespan,
        docs_url=None,  # served without a CDN by install_offline_docs
        redoc_url=None,
        openapi_tags=OPENAPI_TAGS,
    )
    app.state.settings = settings
    app.state.temporal_client = temporal_client
    app.state.templates = Templates(settings.template_dir)
    install_offline_docs(app)
    app.include_router(invites.router, dependencies=[API_KEY_SCHEME])
    app.include_router(emails.router, dependencies=[API_KEY_SCHEME])
    app.include_router(batches.router, dependencies=[API_KEY_SCHEME])
    app.include_router(suppressions.router, dependencies=[API_KEY_SCHEME])
    app.include_router(health.router)
    if settings.dev_pages:
        log.warning("DEV_PAGES=true: /dev/outbox and its invite accept page are served")
        app.include_router(outbox.router)
        app.include_router(dev_accept.router)  # the invite link's page in `make dev`
    app.include_router(codec.router)
    app.include_router(webhooks.router)
    app.include_router(resend_compat.router)
    app.include_router(webhook_endpoints.router)
    app.add_api_route(
        "/metrics", metrics_endpoint, include_in_schema=False, dependencies=[Depends(get_operator)]
    )
    # Behind the guard: only an authenticated request connects (or hears what is missing).
    app.add_middleware(ConnectOnFirstUse, fastapi_app=app)
    # Outermost: refuses unauthenticated, too-fast and too-large requests before parsing.
    app.add_middleware(RequestGuard, settings=settings, surfaces=[resend_errors.SURFACE])
    # Outside the guard, so refusals are counted too.
    app.add_middleware(MetricsMiddleware)
    app.add_middleware(RefuseUnsafeStartup, settings=settings)
    error_handlers.register(app)
    return app


app = create_app()
