"""Dependencies: settings and the process-wide Temporal client."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Request
from temporalio.client import Client

from config import Settings, get_settings


def get_client(request: Request) -> Client:
    """The Temporal client the lifespan connected (lazily: reachable or not)."""
    client: Client = request.app.state.temporal
    return client


SettingsDep = Annotated[Settings, Depends(get_settings)]
ClientDep = Annotated[Client, Depends(get_client)]


@dataclass(frozen=True)
class Caller:
    """Who is calling; idempotency keys are scoped to it so callers cannot collide."""

    scope: str


def get_caller() -> Caller:
    return Caller(scope="")


CallerDep = Annotated[Caller, Depends(get_caller)]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Repeat a request safely: the same key returns the same ids, sends once.",
    ),
]
