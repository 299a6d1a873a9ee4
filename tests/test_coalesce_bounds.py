"""A coalescer's carry stays bounded: past `CARRY_BUDGET` (refs waiting, calls held), a new
email goes alone, through its own provider call, once; it never waits for room or is lost.

The real budget is 1.5 MB (tens of thousands of emails per shard); here it is set to what
one waiting ref fits, so the call held after the first send fills the shard.
"""

from __future__ import annotations

import httpx
import pytest
from temporalio.client import Client

from activities.coalesce_types import coalescer_id
from config import Settings
from testkit.fake_resend import FakeResendServer
from tests.helpers import wait_for_status
from tests.test_coalesce import email, send, send_requests
from workflows.coalesce import coalescer


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """One coalescer shard."""
    return settings.model_copy(update={"coalesce_shards": 1})


async def test_a_full_coalescer_sends_the_next_emails_alone_exactly_once(
    api: httpx.AsyncClient, worker: None, client: Client, settings: Settings,
    fake_resend: FakeResendServer, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setattr(coalescer, "CARRY_BUDGET", 500)
    first = await wait_for_status(api, await send(api, email(0)), "sent")
    assert first["call_id"]  # coalesced: the shard was empty
    assert send_requests(fake_resend) == ["/emails/batch"]

    # The first call is held (a reset run of its email must never be composed again): with
    # it, the shard has no room for another ref.
    later = [await wait_for_status(api, await send(api, email(n)), "sent") for n in (1, 2)]
    for status in later:
        assert status["call_id"] is None, status
        assert [a["outcome"] for a in status["attempts"]] == ["accepted"]
    assert send_requests(fake_resend) == ["/emails/batch", "/emails", "/emails"]
    assert fake_resend.fake.delivered_count == 3 and fake_resend.fake.duplicates() == []

    shard = client.get_workflow_handle(coalescer_id(settings.send_task_queue, 0))
    counts: dict[str, int] = await shard.query("coalescer_status")
    assert counts["calls"] == 1 and counts["pending"] == 0
