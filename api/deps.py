"""Dependencies: settings, the process-wide Temporal client and the authenticated caller."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request, Security, status
from fastapi.security import HTTPBearer
from temporalio.client import Client

from activities.templating import Templates
from api.idempotency import FingerprintKeys
from api.tenants import Caller
from config import Settings

# Dependencies are `async def` on purpose: FastAPI runs a plain `def` dependency in its
# threadpool, a thread hop per dependency per request (profiled: ~12 per accept).


async def get_temporal_client(request: Request) -> Client:
    """The app's Temporal client: the one given to `create_app`, or the lifespan's (lazy)."""
    client: Client = request.app.state.temporal_client
    return client


async def current_settings(request: Request) -> Settings:
    """The settings `create_app` was built with."""
    settings: Settings = request.app.state.settings
    return settings


async def get_templates(request: Request) -> Templates:
    """The email templates (TEMPLATE_DIR, then the built-in ones) `create_app` loaded."""
    templates: Templates = request.app.state.templates
    return templates


SettingsDep = Annotated[Settings, Depends(current_settings)]
TemporalClientDep = Annotated[Client, Depends(get_temporal_client)]
TemplatesDep = Annotated[Templates, Depends(get_templates)]


async def get_caller(request: Request) -> Caller:
    """The caller `RequestGuard` authenticated (a tenant's key, or an operator's)."""
    caller: Caller | None = getattr(request.state, "caller", None)
    if caller is None:  # an open route asked for a caller: refuse, never guess one
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing API key",
            headers={"WWW-Authenticate": 'Bearer realm="durable-mail"'},
        )
    return caller


CallerDep = Annotated[Caller, Depends(get_caller)]


async def get_operator(caller: CallerDep) -> Caller:
    """The caller, if it holds an operator credential (API_KEYS); tenant keys get 403."""
    if not caller.operator:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this route needs an operator key")
    return caller


OperatorDep = Annotated[Caller, Depends(get_operator)]


async def get_fingerprint_keys(settings: SettingsDep) -> FingerprintKeys:
    """The request-fingerprint keys of these settings (derived once per codec key list)."""
    return FingerprintKeys.from_settings(settings)


FingerprintKeysDep = Annotated[FingerprintKeys, Depends(get_fingerprint_keys)]
# Documents the bearer scheme in OpenAPI (the /docs "Authorize" button); `RequestGuard`
# has already enforced it by the time this runs.
API_KEY_SCHEME = Security(
    HTTPBearer(
        auto_error=False,
        description=(
            "A tenant's key (TENANTS) or an operator key (API_KEYS; `make dev`: .dev/api_key)"
        ),
    )
)
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Repeat a request safely: the same key returns the same ids, sends once.",
    ),
]
