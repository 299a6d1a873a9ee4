"""Priority and fairness on the send queue (the dev server runs with the new matcher): single
sends go ahead of batches, and one tenant's backlog does not hold another tenant's send back.

Order, not time: every send is queued while no provider worker runs, then one worker with one
slot takes them, and the fake Resend's request log says in which order they went out.
The single sends here go alone (`alone`): coalesced, they share calls, and the order inside
a call is `workflows.policy.compose`'s (tests/test_coalesce.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from temporalio.client import Client
from temporalio.worker import Worker

from config import Settings
from testkit.fake_resend import FakeResendServer
from testkit.polling import eventually
from tests.helpers import INVITE
from worker import build_transport, build_workers

BACKLOG = 8


@pytest.fixture
async def idle_sends(client: Client, settings: Settings) -> AsyncIterator[Worker]:
    """The workflow worker runs; the returned provider worker (one slot) is not started yet,
    so every send's provider call waits on the send queue."""
    settings.worker_max_concurrent_activities = 1
    async with httpx.AsyncClient(base_url=settings.resend_api_url) as http:
        workflows, sends = build_workers(client, settings, build_transport(settings, http))
        async with workflows:
            yield sends


async def scheduled(client: Client, workflow_id: str) -> bool:
    """True once the workflow has scheduled its provider call (it waits on the send queue)."""
    description = await client.get_workflow_handle(workflow_id).describe()
    return bool(description.raw_description.pending_activities)


async def queue(client: Client, api: httpx.AsyncClient, path: str, body: object) -> list[str]:
    """POST a send and wait until its provider call waits on the send queue."""
    response = await api.post(path, json=body)
    assert response.status_code == 202, response.text
    accepted = response.json()
    workflow_id = accepted["workflow_id"]
    await eventually(lambda: scheduled(client, workflow_id), what=f"{workflow_id} scheduled")
    if "items" in accepted:
        return [item["id"] for item in accepted["items"]]
    return [accepted.get("invite_id") or accepted["id"]]


async def test_single_sends_go_first_and_tenants_share_the_queue(
    alone: None,
    api: httpx.AsyncClient,
    client: Client,
    idle_sends: Worker,
    fake_resend: FakeResendServer,
) -> None:
    bulk = await queue(
        client,
        api,
        "/v1/invites/batch",
        {
            "invites": [
                {**INVITE, "email": f"a-bulk{i}@example.com", "tenant_id": "a"} for i in range(3)
            ]
        },
    )
    for i in range(BACKLOG):
        await queue(
            client, api, "/v1/invites", {**INVITE, "email": f"a{i}@example.com", "tenant_id": "a"}
        )
    await queue(client, api, "/v1/invites", {**INVITE, "email": "b@example.com", "tenant_id": "b"})

    async with idle_sends:
        await fake_resend.fake.wait_for_deliveries(BACKLOG + 1 + len(bulk), timeout=30)

    calls = [r for r in fake_resend.fake.request_log if r.path.startswith("/emails")]
    order = [
        "bulk" if r.path == "/emails/batch" else _recipient(fake_resend, r.idempotency_key)
        for r in calls
    ]
    # Tenant B's one invite, queued behind A's eight, is among the first two to go out...
    assert "b@example.com" in order[:2], order
    # ... and A's batch (bulk), queued before all of them, waits for transactional sends
    # (a quarter of their share) without being starved until the backlog ends (1.0: classes
    # are weighted fairness keys, not strict priorities, workflows/policy.py).
    assert order.count("bulk") == 1, order
    assert 2 <= order.index("bulk") < len(order) - 1, order


def _recipient(fake_resend: FakeResendServer, key: str | None) -> str:
    [delivery] = [d for d in fake_resend.fake.deliveries if d.idempotency_key == key]
    return delivery.to[0]


async def test_one_tenants_batches_do_not_starve_anothers(
    api: httpx.AsyncClient,
    client: Client,
    idle_sends: Worker,
    fake_resend: FakeResendServer,
) -> None:
    def batch(tenant: str, n: int) -> dict[str, object]:
        invites = [{**INVITE, "email": f"{tenant}{n}-{i}@example.com"} for i in range(2)]
        return {"invites": [{**invite, "tenant_id": tenant} for invite in invites]}

    for n in range(4):
        await queue(client, api, "/v1/invites/batch", batch("a", n))
    await queue(client, api, "/v1/invites/batch", batch("b", 0))

    async with idle_sends:
        await fake_resend.fake.wait_for_deliveries(10, timeout=30)

    first_of_each_call = [d.to[0] for d in fake_resend.fake.deliveries if d.batch_index == 0]
    assert "b0-0@example.com" in first_of_each_call[:2], first_of_each_call
