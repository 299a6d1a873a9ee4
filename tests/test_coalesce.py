"""Coalescing: due single sends share provider batch calls, exactly once, each email keeping
its own id, status, attempts and provider id (POST /v1/emails -> SendEmail -> Coalescer ->
deliver_coalesced_call -> the fake Resend's POST /emails/batch)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from config import Settings
from testkit.fake_resend import FakeResendServer
from tests.helpers import wait_for_status


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """This module's sends go through one coalescer shard."""
    return settings.model_copy(update={"coalesce_shards": 1})


def email(n: int, **extra: Any) -> dict[str, Any]:
    return {"to": f"user{n}@example.com", "subject": f"Hi {n}", "text": f"Hello {n}", **extra}


async def send(api: httpx.AsyncClient, body: dict[str, Any], **headers: str) -> str:
    response = await api.post("/v1/emails", json=body, headers=headers)
    assert response.status_code == 202, response.text
    email_id: str = response.json()["id"]
    return email_id


def send_requests(fake_resend: FakeResendServer) -> list[str]:
    return [r.path for r in fake_resend.fake.request_log if r.path.startswith("/emails")]


async def test_single_sends_due_together_share_calls_and_each_keeps_its_identity(
    api: httpx.AsyncClient, worker: None, fake_resend: FakeResendServer
) -> None:
    # Each provider call takes 0.5 s: meanwhile the next sends gather for the next call.
    fake_resend.fake.configure(latency=0.5)
    ids = await asyncio.gather(*(send(api, email(n)) for n in range(40)))
    statuses = [await wait_for_status(api, i, "sent", timeout=30) for i in ids]
    deliveries = fake_resend.fake.deliveries
    assert len(deliveries) == 40 and fake_resend.fake.duplicates() == []
    requests = send_requests(fake_resend)
    assert set(requests) == {"/emails/batch"} and len(requests) < 10, requests
    by_id = {d.id: d for d in deliveries}
    for n, status in enumerate(statuses):
        delivery = by_id[status["provider_message_id"]]
        assert delivery.to == [f"user{n}@example.com"]
        assert status["call_id"], status
        assert [a["outcome"] for a in status["attempts"]] == ["accepted"]
    # Every call's key is one per composed call.
    keys = {d.idempotency_key for d in deliveries}
    assert len(keys) == len(requests)


async def test_a_lone_send_at_idle_goes_at_once_as_a_call_of_one(
    api: httpx.AsyncClient, worker: None, fake_resend: FakeResendServer
) -> None:
    await wait_for_status(api, await send(api, email(0)), "sent")  # warm the coalescer
    started = time.monotonic()
    email_id = await send(api, email(1))
    delivery = (await fake_resend.fake.wait_for_deliveries(2, timeout=5))[1]
    assert delivery.received_at - started < 1.0
    status = await wait_for_status(api, email_id, "sent")
    assert status["provider_message_id"] == delivery.id
