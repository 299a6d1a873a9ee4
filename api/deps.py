"""Dependencies: settings, the process-wide Temporal client and the authenticated caller."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request, Security, status
from fastapi.security import HTTPBearer
from starlette.applications import Starlette
from temporalio.client import Client

from api.security import Caller
from config import Settings, get_settings

# Dependencies are `async def` on purpose: FastAPI runs a plain `def` dependency in its
# threadpool, a thread hop per dependency per request (profiled: ~12 per accept).


async def get_client(request: Request) -> Client:
    """The Temporal client the lifespan connected (lazily: reachable or not)."""
    client: Client = request.app.state.temporal
    return client


def app_settings(app: Starlette) -> Settings:
    """The settings the routes see (tests override `get_settings` on the app)."""
    provider = getattr(app, "dependency_overrides", {}).get(get_settings, get_settings)
    settings: Settings = provider()
    return settings


async def current_settings(request: Request) -> Settings:
    return app_settings(request.app)


SettingsDep = Annotated[Settings, Depends(current_settings)]
ClientDep = Annotated[Client, Depends(get_client)]


async def get_caller(request: Request) -> Caller:
    """The caller `RequestGuard` authenticated (its key's id scopes idempotency keys)."""
    caller: Caller | None = getattr(request.state, "caller", None)
    if caller is None:  # a route outside the guarded prefixes asked for a caller
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing API key",
            headers={"WWW-Authenticate": 'Bearer realm="durable-mail"'},
        )
    return caller


CallerDep = Annotated[Caller, Depends(get_caller)]
# Documents the bearer scheme in OpenAPI (the /docs "Authorize" button); `RequestGuard`
# has already enforced it by the time this runs.
API_KEY_SCHEME = Security(
    HTTPBearer(auto_error=False, description="An API key from API_KEYS (`make dev`: .dev/api_key)")
)
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Repeat a request safely: the same key returns the same ids, sends once.",
    ),
]
