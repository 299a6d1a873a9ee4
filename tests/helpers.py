"""Small waiting helpers: poll a condition with a deadline, never sleep blindly."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

INVITE = {"email": "ann@example.com", "tenant_name": "Acme", "inviter_name": "Bob"}


async def eventually(
    check: Callable[[], Awaitable[Any]], *, timeout: float = 15.0, interval: float = 0.05
) -> Any:
    """Call `check` until it returns a truthy value; fail with its last value at the deadline."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s; last value: {last!r}")


async def wait_for_status(
    api: httpx.AsyncClient, email_id: str, *statuses: str, timeout: float = 15.0
) -> dict[str, Any]:
    """GET /v1/emails/{id} until its status is one of `statuses`."""

    async def check() -> dict[str, Any] | None:
        response = await api.get(f"/v1/emails/{email_id}")
        body: dict[str, Any] = response.json()
        return body if response.status_code == 200 and body["status"] in statuses else None

    result: dict[str, Any] = await eventually(check, timeout=timeout)
    return result
