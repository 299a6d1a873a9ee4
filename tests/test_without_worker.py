"""Reads and cancels while no worker runs: answered from what Temporal knows, promptly.

Each test's task queues are its own, so no worker polls them until the test starts one.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

import httpx
from temporalio.client import Client

from config import Settings
from testkit.fake_resend import FakeResendServer, Fault
from testkit.polling import eventually
from tests.helpers import INVITE, running_worker, wait_for_status
from workflows.search_attributes import EMAIL_STATUS
from workflows.types import CANCEL_REQUEST_SIGNAL, CancelInput

EMAIL = {"to": "ann@example.com", "subject": "Later", "text": "hi"}
# The read waits ~1 s for the workflow's own answer, then answers from what the server
# knows: ~1 s in all here, but once 4.6 s in a CI run (all of it before the query failed).
# The bound only catches a read that hangs on the missing worker, not how fast it is.
PROMPT = 10.0


async def invite_retrying(
    api: httpx.AsyncClient, fake_resend: FakeResendServer, fault: Fault
) -> dict[str, Any]:
    """Accept an invite whose first attempt meets `fault`; its body once it reads `retrying`
    (a worker must run)."""
    fake_resend.fake.enqueue_faults([fault])
    body: dict[str, Any] = (await api.post("/v1/invites", json=INVITE)).json()
    await wait_for_status(api, body["invite_id"], "retrying")
    return body


async def timed(request: Any) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response: httpx.Response = await request
    return response, time.monotonic() - started


async def test_read_without_a_worker_answers_what_temporal_knows_marked_not_live(
    api: httpx.AsyncClient,
) -> None:
    body = (await api.post("/v1/emails", json=EMAIL)).json()
    response, elapsed = await timed(api.get(body["status_url"]))
    assert response.status_code == 200, response.text
    status = response.json()
    assert elapsed < PROMPT, f"took {elapsed:.1f}s"
    assert status["live"] is False
    assert status["status"] == "queued" and status["kind"] == "email"
    assert status["created_at"] and status["attempts"] == []
    events, _ = await timed(api.get(f"{body['status_url']}/events"))
    assert events.status_code == 200 and events.json()["events"][0]["type"] == "accepted"


async def test_cancel_without_a_worker_is_recorded_then_applied_when_one_runs(
    api: httpx.AsyncClient, client: Client, settings: Settings, fake_resend: FakeResendServer
) -> None:
    send_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    body = (await api.post("/v1/emails", json={**EMAIL, "send_at": send_at})).json()

    response, elapsed = await timed(api.delete(body["status_url"]))
    assert response.status_code == 202, response.text
    assert elapsed < PROMPT, f"took {elapsed:.1f}s"
    assert response.json()["status"] == "scheduled"
    assert "cancel requested" in response.json()["detail"]
    # Resend's surface says it the same way: 202 (recorded), not 200 (cancelled).
    other = (await api.post("/v1/emails", json={**EMAIL, "send_at": send_at})).json()
    resend_cancel = await api.post(f"/emails/{other['id']}/cancel")
    assert resend_cancel.status_code == 202, resend_cancel.text
    assert resend_cancel.json() == {"object": "email", "id": other["id"]}

    # The workflow has never run: the request is handled in its very first task, and the
    # search attribute follows it there (it stayed `scheduled` before).
    async with running_worker(client, settings):
        status = await wait_for_status(api, body["id"], "cancelled")
        await wait_for_status(api, other["id"], "cancelled")
    assert status["live"] is True and status["cancel_requested_at"] and status["cancelled_at"]
    handle = client.get_workflow_handle(body["workflow_id"])

    async def attribute() -> str | None:
        return (await handle.describe()).typed_search_attributes.get(EMAIL_STATUS)

    assert await eventually(attribute) == "cancelled"
    kinds = [e["type"] for e in (await api.get(f"{body['status_url']}/events")).json()["events"]]
    assert kinds == ["accepted", "scheduled", "cancel_requested", "cancelled"]
    assert fake_resend.fake.requests_total == 0


async def test_cancel_request_once_an_attempt_may_have_gone_out_is_noted_not_applied(
    shards: int,
    api: httpx.AsyncClient,
    client: Client,
    settings: Settings,
    fake_resend: FakeResendServer,
) -> None:
    # After a 500 the provider may have the email: a cancel must not claim otherwise (a
    # coalesced email keeps that from its call's attempts).
    async with running_worker(client, settings):
        body = await invite_retrying(api, fake_resend, Fault(status=500, retry_after=2))
        # What the API records when no worker answers the update at once.
        handle = client.get_workflow_handle(body["workflow_id"])
        await handle.signal(CANCEL_REQUEST_SIGNAL, CancelInput())
        status = await wait_for_status(api, body["invite_id"], "sent")
    assert status["cancel_requested_at"] and status["cancelled_at"] is None
    assert status["provider_may_have_accepted"] is True
    assert fake_resend.fake.delivered_count == 1
    # Sent: the server alone knows it too, so no worker is needed for the 409.
    assert (await api.delete(body["status_url"])).status_code == 409


async def test_read_of_a_terminated_send_says_what_is_known_not_sending(
    alone: None, api: httpx.AsyncClient, client: Client, settings: Settings,
    fake_resend: FakeResendServer,
) -> None:  # fmt: skip
    # Alone: coalesced, the second invite would wait behind the first's call, held by its
    # 429's 60 s retry-after (the account's pace), and never read `retrying` here.
    # Refused (429) then terminated: provably never sent. A 500 then terminated: unknown.
    async with running_worker(client, settings):
        refused = await invite_retrying(api, fake_resend, Fault(status=429, retry_after=60))
        unknown = await invite_retrying(api, fake_resend, Fault(status=500, retry_after=60))
        for body in (refused, unknown):
            await client.get_workflow_handle(body["workflow_id"]).terminate("operator")
        failed = await wait_for_status(api, refused["invite_id"], "failed")
        undetermined = await wait_for_status(api, unknown["invite_id"], "undetermined")
    assert failed["last_error"]["type"] == "WorkflowTerminated"
    assert "may send it twice" in undetermined["last_error"]["message"]
    # Without a worker, the server alone cannot tell what the attempts were: undetermined.
    not_live = (await api.get(refused["status_url"])).json()
    assert not_live["live"] is False and not_live["status"] == "undetermined"


async def test_invite_without_a_worker_is_read_from_its_input_and_changes_are_not_confirmed(
    api: httpx.AsyncClient, client: Client, settings: Settings, fake_resend: FakeResendServer
) -> None:
    body = (await api.post("/v1/invites", json={**INVITE, "remind_after_days": 2})).json()
    url = f"/v1/invites/{body['invite_id']}"
    response, elapsed = await timed(api.get(url))
    assert response.status_code == 200, response.text
    assert elapsed < PROMPT, f"took {elapsed:.1f}s"
    view = response.json()
    assert view["live"] is False and view["status"] == "pending" and view["link"] == "managed"
    created = datetime.fromisoformat(view["created_at"])
    assert datetime.fromisoformat(view["expires_at"]) - created == timedelta(days=7)
    assert datetime.fromisoformat(view["remind_at"]) - created == timedelta(days=2)
    assert view["invitation"] is None and view["email"] == INVITE["email"]

    # An accept or a revoke needs the invite's workflow to decide: without a worker it is
    # a 503 that says the change may still apply (not a 500, not a false refusal).
    for request in (api.post(f"{url}/accept", json={"token": "not-the-token"}), api.delete(url)):
        refused = await request
        assert refused.status_code == 503, refused.text
        assert "may still be applied" in refused.json()["detail"]

    # And it did: once a worker runs, the revoke that no worker answered is applied.
    async with running_worker(client, settings):

        async def ended() -> dict[str, Any] | None:
            got = (await api.get(url)).json()
            return got if got["live"] and got["status"] != "pending" else None

        live = await eventually(ended, what="the invite's live state")
    assert live["status"] == "revoked" and live["revoked_at"]
    # Both count the invite's times from the accept, not from when a worker first came.
    assert (live["created_at"], live["expires_at"]) == (view["created_at"], view["expires_at"])


async def test_a_batch_invite_without_a_worker_is_read_from_its_batch_s_input(
    api: httpx.AsyncClient, client: Client, settings: Settings
) -> None:
    invites = [{**INVITE, "email": f"guest{n}@example.com", "role": f"r{n}"} for n in range(2)]
    request = {"invites": invites, "remind_after_days": 1, "expires_in_days": 3}
    body = (await api.post("/v1/invites/batch", json=request)).json()
    url = f"/v1/invites/{body['items'][1]['id']}"
    response, elapsed = await timed(api.get(url))
    assert response.status_code == 200, response.text
    assert elapsed < PROMPT, f"took {elapsed:.1f}s"
    view = response.json()
    assert (view["live"], view["status"], view["link"]) == (False, "pending", "managed")
    assert (view["email"], view["role"]) == ("guest1@example.com", "r1")
    created = datetime.fromisoformat(view["created_at"])
    assert datetime.fromisoformat(view["expires_at"]) - created == timedelta(days=3)
    assert datetime.fromisoformat(view["remind_at"]) - created == timedelta(days=1)
    revoke = await api.delete(url)
    assert revoke.status_code == 503 and "may still be applied" in revoke.json()["detail"]

    async with running_worker(client, settings):

        async def ended() -> dict[str, Any] | None:
            got = (await api.get(url)).json()
            return got if got["live"] and got["status"] != "pending" else None

        live = await eventually(ended, what="the invite's live state")
    assert live["status"] == "revoked"
    assert (live["created_at"], live["expires_at"]) == (view["created_at"], view["expires_at"])


async def test_batch_reads_without_a_worker_answer_from_the_recorded_input_not_live(
    api: httpx.AsyncClient,
) -> None:
    emails = [{**EMAIL, "to": f"user{n}@example.com"} for n in range(3)]
    body = (await api.post("/v1/emails/batch", json={"emails": emails})).json()
    response, elapsed = await timed(api.get(body["status_url"]))
    assert response.status_code == 200, response.text
    assert elapsed < PROMPT, f"took {elapsed:.1f}s"
    batch = response.json()
    assert batch["live"] is False and batch["status"] == "queued"
    assert batch["id"] == body["id"] and batch["total"] == 3 and batch["counts"] == {"queued": 3}
    assert [item["id"] for item in batch["items"]] == [item["id"] for item in body["items"]]
    assert batch["created_at"] and batch["attempts"] == []

    # Each item on both surfaces: its status from the same record, its message from the input.
    item = body["items"][1]
    response, elapsed = await timed(api.get(item["status_url"]))
    assert response.status_code == 200, response.text
    assert elapsed < PROMPT, f"took {elapsed:.1f}s"
    assert response.json()["live"] is False and response.json()["status"] == "queued"
    resend, elapsed = await timed(api.get(f"/emails/{item['id']}"))
    assert resend.status_code == 200, resend.text
    assert elapsed < PROMPT, f"took {elapsed:.1f}s"
    assert resend.json()["last_event"] == "queued" and resend.json()["to"] == ["user1@example.com"]
