"""What several API tests send and wait for."""

from __future__ import annotations

from typing import Any

import httpx

from testkit.polling import eventually

INVITE = {"email": "ann@example.com", "tenant_name": "Acme", "inviter_name": "Bob"}


async def wait_for_status(
    api: httpx.AsyncClient, email_id: str, *statuses: str, timeout: float = 15.0
) -> dict[str, Any]:
    """GET /v1/emails/{id} until its status is one of `statuses`."""

    async def check() -> dict[str, Any] | None:
        response = await api.get(f"/v1/emails/{email_id}")
        body: dict[str, Any] = response.json()
        return body if response.status_code == 200 and body["status"] in statuses else None

    result: dict[str, Any] = await eventually(
        check, timeout=timeout, what=f"{email_id} in {statuses}"
    )
    return result
