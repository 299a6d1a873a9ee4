"""End to end: POST /v1/invites -> SendInviteEmail -> deliver_email -> fake Resend."""

from __future__ import annotations

import asyncio
import time

import httpx
from temporalio.client import Client

from activities.coalesce_types import call_idempotency_key, coalescer_of
from config import Settings
from testkit.fake_resend import FakeResendServer, Fault
from tests.helpers import INVITE, running_worker, wait_for_status


async def test_invite_is_delivered_once_with_accept_link(
    shards: int,
    api: httpx.AsyncClient,
    worker: None,
    fake_resend: FakeResendServer,
    settings: Settings,
) -> None:
    response = await api.post("/v1/invites", json={**INVITE, "role": "admin"})
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["invite_id"].startswith("inv_")
    assert body["workflow_id"] == "invite-" + body["invite_id"].removeprefix("inv_")
    assert "ann@example.com" not in body["workflow_id"]
    assert body["status_url"] == f"/v1/emails/{body['invite_id']}"

    status = await wait_for_status(api, body["invite_id"], "sent")
    [delivery] = fake_resend.fake.deliveries
    assert status["provider_message_id"] == delivery.id
    assert status["attempt_count"] == 1
    assert status["attempts"][0]["outcome"] == "accepted"
    assert delivery.to == ["ann@example.com"]
    if shards:  # the call that carried it is its key, and the email names it
        assert delivery.idempotency_key == call_idempotency_key(status["call_id"])
    else:
        assert delivery.idempotency_key == f"{body['workflow_id']}/send"
    payload = delivery.payload
    assert payload["subject"] == "Bob invited you to join Acme"
    assert (
        f"{settings.app_base_url}/invites/accept?invite={body['invite_id']}&token="
        in (payload["text"])
    )
    token = payload["text"].split("token=")[1].split()[0]
    assert len(token) >= 40 and token not in body["workflow_id"]
    assert {"name": "email_id", "value": body["invite_id"]} in payload["tags"]


async def test_server_errors_are_retried_and_every_attempt_is_recorded(
    shards: int,
    api: httpx.AsyncClient,
    worker: None,
    fake_resend: FakeResendServer,
    client: Client,
) -> None:
    fake_resend.fake.enqueue_faults([Fault(status=500), Fault(status=503, html=True)])
    body = (await api.post("/v1/invites", json=INVITE)).json()

    status = await wait_for_status(api, body["invite_id"], "sent")
    assert fake_resend.fake.delivered_count == 1
    assert [a["outcome"] for a in status["attempts"]] == [
        "transient_error",
        "transient_error",
        "accepted",
    ]
    assert [a["http_status"] for a in status["attempts"]] == [500, 503, 200]
    assert status["attempts"][0]["error_type"] == "ProviderUnavailable"
    assert status["attempts"][0]["retry_in_seconds"] > 0
    assert status["last_error"] is None

    # Each failed attempt is its own event in the workflow history, not only the last one:
    # the invite's own, or the coalescer's that made the call which carried it.
    made_by = coalescer_of(status["call_id"]) if shards else body["workflow_id"]
    history = await client.get_workflow_handle(made_by).fetch_history()
    # Failure messages are encrypted in history; the client's converter decodes them.
    failures = [
        str(
            await client.data_converter.decode_failure(
                e.activity_task_failed_event_attributes.failure
            )
        )
        for e in history.events
        if e.HasField("activity_task_failed_event_attributes")
    ]
    assert len(failures) == 2
    assert "HTTP 500" in failures[0] and "HTTP 503" in failures[1]


async def test_rate_limited_attempt_waits_for_retry_after(
    api: httpx.AsyncClient, worker: None, fake_resend: FakeResendServer
) -> None:
    fake_resend.fake.enqueue_faults([Fault(status=429, retry_after=2)])
    body = (await api.post("/v1/invites", json=INVITE)).json()

    status = await wait_for_status(api, body["invite_id"], "sent")
    first, second = fake_resend.fake.request_log[:2]
    assert first.status == 429 and second.status == 200
    assert second.received_at - first.received_at >= 2.0
    assert status["attempts"][0]["error_type"] == "ProviderRateLimited"
    assert status["attempts"][0]["retry_in_seconds"] == 2.0
    assert fake_resend.fake.delivered_count == 1


async def test_permanent_rejection_fails_after_one_attempt(
    api: httpx.AsyncClient, worker: None, fake_resend: FakeResendServer
) -> None:
    fake_resend.fake.enqueue_faults([Fault(status=422, name="invalid_from_address")])
    body = (await api.post("/v1/invites", json=INVITE)).json()

    status = await wait_for_status(api, body["invite_id"], "failed")
    assert status["attempt_count"] == 1
    assert status["attempts"][0]["outcome"] == "permanent_error"
    assert status["last_error"]["type"] == "ProviderRejected"
    assert "422" in status["last_error"]["message"]
    assert fake_resend.fake.requests_total == 1
    assert fake_resend.fake.delivered_count == 0


async def test_attempt_that_times_out_while_provider_delivers_is_sent_once(
    api: httpx.AsyncClient,
    worker: None,
    fake_resend: FakeResendServer,
    settings: Settings,
) -> None:
    # The provider accepts at once but answers only after our HTTP timeout (5 s).
    fake_resend.fake.enqueue_faults([Fault(hold=6.0)])
    body = (await api.post("/v1/invites", json=INVITE)).json()

    status = await wait_for_status(api, body["invite_id"], "sent", timeout=30)
    assert fake_resend.fake.delivered_count == 1
    assert fake_resend.fake.duplicates() == []
    assert status["attempts"][0]["error_type"] == "ProviderNetworkError"
    assert status["provider_message_id"] == fake_resend.fake.deliveries[0].id


async def test_same_idempotency_key_twice_starts_one_workflow_and_sends_one_email(
    api: httpx.AsyncClient, worker: None, fake_resend: FakeResendServer
) -> None:
    headers = {"Idempotency-Key": "invite-ann-acme-1"}
    first = await api.post("/v1/invites", json=INVITE, headers=headers)
    status = await wait_for_status(api, first.json()["invite_id"], "sent")
    second = await api.post("/v1/invites", json=INVITE, headers=headers)

    assert first.status_code == second.status_code == 202
    assert second.json() == first.json()
    assert second.headers["Idempotent-Replayed"] == "true"
    assert fake_resend.fake.delivered_count == 1
    assert status["attempt_count"] == 1

    other_body = await api.post(
        "/v1/invites", json={**INVITE, "email": "eve@example.com"}, headers=headers
    )
    assert other_body.status_code == 409
    assert "different request body" in other_body.json()["detail"]


async def test_accepts_in_milliseconds_while_provider_takes_ten_seconds(
    api: httpx.AsyncClient, worker: None, fake_resend: FakeResendServer
) -> None:
    fake_resend.fake.configure(latency=10.0)
    started = time.monotonic()
    response = await api.post("/v1/invites", json=INVITE)
    elapsed = time.monotonic() - started

    assert response.status_code == 202
    # The answer came before the provider answered anything: it never waited on it.
    assert fake_resend.fake.delivered_count == 0
    assert elapsed < 2.0, f"202 took {elapsed:.2f}s"
    status = (await api.get(response.json()["status_url"])).json()
    assert status["status"] in ("queued", "sending")
    fake_resend.fake.configure(latency=0.0)


async def test_concurrent_invites_each_get_their_own_email(
    api: httpx.AsyncClient, worker: None, fake_resend: FakeResendServer
) -> None:
    invites = [{**INVITE, "email": f"user{n}@example.com"} for n in range(20)]
    responses = await asyncio.gather(*(api.post("/v1/invites", json=i) for i in invites))
    assert {r.status_code for r in responses} == {202}
    await fake_resend.fake.wait_for_deliveries(20, timeout=30)
    assert sorted(d.to[0] for d in fake_resend.fake.deliveries) == sorted(
        i["email"] for i in invites
    )
    assert fake_resend.fake.duplicates() == []


async def test_burst_under_provider_rate_limit_gets_no_429(
    shards: int,
    api: httpx.AsyncClient,
    client: Client,
    fake_resend: FakeResendServer,
    settings: Settings,
) -> None:
    # The provider allows 5/s; the server hands tasks out in bursts, the worker paces them.
    limited = settings.model_copy(update={"resend_rate_limit_per_second": 5.0})
    fake_resend.fake.configure(rate_limit_per_second=5.0)
    invites = [{**INVITE, "email": f"burst{n}@example.com"} for n in range(30)]
    async with running_worker(client, limited):
        responses = await asyncio.gather(*(api.post("/v1/invites", json=i) for i in invites))
        assert {r.status_code for r in responses} == {202}
        await fake_resend.fake.wait_for_deliveries(30, timeout=60)
    # Alone, 30 calls paced to 5/s; coalesced, the invites due together share fewer calls.
    requests = fake_resend.fake.requests_by_status
    assert set(requests) == {200}
    assert requests[200] == 30 if not shards else requests[200] < 30
    assert fake_resend.fake.duplicates() == []
