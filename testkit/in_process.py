"""The API in-process (over ASGI) and a real worker (both queues) on the given settings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from temporalio.client import Client

from api.main import create_app
from config import Settings
from worker import build_transport, build_workers


@asynccontextmanager
async def api_and_worker(
    client: Client, settings: Settings, key: str
) -> AsyncIterator[httpx.AsyncClient]:
    """An API client sending `key`, with a worker running, both stopped on exit."""
    app = create_app(settings, temporal_client=client)
    async with httpx.AsyncClient(base_url=settings.resend_api_url) as http:
        workflows, sends = build_workers(client, settings, build_transport(settings, http))
        async with (
            workflows,
            sends,
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app),
                base_url="http://api.test",
                headers={"Authorization": f"Bearer {key}"},
                timeout=60,
            ) as api,
        ):
            yield api
