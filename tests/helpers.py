"""What several API tests send and wait for; scripts/dev.py as a module."""

from __future__ import annotations

import base64
import binascii
import importlib.util
import os
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import ModuleType
from typing import Any, Self

import httpx
from fastapi import FastAPI
from starlette.applications import Starlette
from temporalio.client import Client

from api.deps import get_temporal_client
from api.main import create_app
from config import Settings
from infra.temporal_client import API_RETRY, connect
from testkit.keys import API_KEY, CODEC_KEYS
from testkit.polling import eventually
from worker import build_transport, build_workers

ROOT = Path(__file__).resolve().parent.parent

INVITE = {"email": "ann@example.com", "tenant_name": "Acme", "inviter_name": "Bob"}
# The token of our accept link, as it reaches the provider.
TOKEN_IN_LINK = re.compile(r"[?&]token=([A-Za-z0-9_-]+)")


def link_token(text: str) -> str:
    """The token in an email's accept link (fails the test if there is none)."""
    found = TOKEN_IN_LINK.search(text)
    assert found, "no token in the accept link"
    return found.group(1)


class ClientProxy:
    """The real Temporal client, served to an app in its place; subclasses record calls."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def serve(self, app: FastAPI) -> Self:
        """Make `app` use this client; returns it."""
        app.dependency_overrides[get_temporal_client] = lambda: self
        return self


def asgi_client(
    app: Starlette, key: str | None = API_KEY, base_url: str = "http://api.test"
) -> httpx.AsyncClient:
    """An HTTP client on `app` in-process (ASGI), sending `key` as its bearer (None: no key)."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url=base_url, headers=headers
    )


async def app_without_temporal(settings: Settings, **update: Any) -> FastAPI:
    """The API (with `update` to its settings) wired to a Temporal address where nothing listens."""
    down = settings.model_copy(update={"temporal_address": "127.0.0.1:9", **update})
    return create_app(down, temporal_client=await connect(down, lazy=True, retry_config=API_RETRY))


@asynccontextmanager
async def without_codec(
    client: Client, settings: Settings
) -> AsyncIterator[tuple[httpx.AsyncClient, Client]]:
    """The API and a worker with no payload codec anywhere: what the Temporal database then
    holds is readable by anyone with access to it. Yields (API client, that Temporal client)."""
    plain = await Client.connect(client.service_client.config.target_host, namespace="default")
    unencrypted = settings.model_copy(update={"payload_codec_keys": None})
    app = create_app(unencrypted, temporal_client=plain)
    async with asgi_client(app) as api, running_worker(plain, unencrypted):
        yield api, plain


@asynccontextmanager
async def running_worker(client: Client, settings: Settings) -> AsyncIterator[None]:
    """A real worker (both queues) of `settings` on `client`, sending to its provider."""
    async with httpx.AsyncClient(
        base_url=settings.resend_api_url, timeout=settings.resend_timeout_seconds
    ) as http:
        workflows, sends = build_workers(client, settings, build_transport(settings, http))
        async with workflows, sends:
            yield


async def wait_for_status(
    api: httpx.AsyncClient, email_id: str, *statuses: str, timeout: float = 15.0
) -> dict[str, Any]:
    """GET /v1/emails/{id} until its status is one of `statuses`."""
    return await _wait_until_status(api, f"/v1/emails/{email_id}", statuses, timeout)


async def wait_for_batch(
    api: httpx.AsyncClient, batch_id: str, *statuses: str, timeout: float = 15.0
) -> dict[str, Any]:
    """GET /v1/batches/{id} until the call's status is one of `statuses`."""
    return await _wait_until_status(api, f"/v1/batches/{batch_id}", statuses, timeout)


async def _wait_until_status(
    api: httpx.AsyncClient, path: str, statuses: tuple[str, ...], timeout: float
) -> dict[str, Any]:
    """GET `path` until it answers 200 with a status among `statuses`; its body."""

    async def check() -> dict[str, Any] | None:
        response = await api.get(path)
        body: dict[str, Any] = response.json()
        return body if response.status_code == 200 and body["status"] in statuses else None

    result: dict[str, Any] = await eventually(check, timeout=timeout, what=f"{path} in {statuses}")
    return result


def readable_text(node: Any) -> Iterator[str]:
    """Every string in a history's JSON, plus the base64 ones decoded (payload data)."""
    if isinstance(node, dict):
        for value in node.values():
            yield from readable_text(value)
    elif isinstance(node, list):
        for value in node:
            yield from readable_text(value)
    elif isinstance(node, str):
        yield node
        try:
            yield base64.b64decode(node, validate=True).decode("utf-8", errors="replace")
        except (binascii.Error, ValueError):
            pass


def dev_script() -> ModuleType:
    """scripts/dev.py (`make dev`), to start processes the way it does."""
    spec = importlib.util.spec_from_file_location("dev_script", ROOT / "scripts" / "dev.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def dev_env(settings: Settings, run_dir: Path, api_keys: str) -> dict[str, str]:
    """The environment of a worker or API that a test spawns as `make dev` does, on its server."""
    return {
        **os.environ,
        "TEMPORAL_ADDRESS": settings.temporal_address,
        "TASK_QUEUE": settings.task_queue,
        "SEND_TASK_QUEUE": settings.send_task_queue,
        "OUTBOX_DIR": str(run_dir / "outbox"),
        "WORKER_METRICS_PORT": "0",
        "API_KEYS": api_keys,
        "PAYLOAD_CODEC_KEYS": CODEC_KEYS,
    }
