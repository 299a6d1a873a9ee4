"""Delivery tracking end to end: signed webhooks -> workflow -> status, timeline, visibility."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import httpx
from temporalio.client import Client, WorkflowExecutionStatus

from config import Settings
from testkit.dev_server import temporal_binary
from testkit.fake_resend import FakeResendServer, Fault
from testkit.polling import eventually
from tests.helpers import INVITE, wait_for_status
from tests.webhooks import WEBHOOK_URL, event_body, post_event, svix_headers
from workflows.search_attributes import EMAIL_KIND, EMAIL_STATUS, PROVIDER_MESSAGE_ID, TENANT_ID


def tenant() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


async def listed(api: httpx.AsyncClient, query: str, email_id: str) -> dict[str, Any] | None:
    response = await api.get(f"/v1/emails?{query}")
    assert response.status_code == 200, response.text
    return next((i for i in response.json()["items"] if i["id"] == email_id), None)


async def test_forged_stale_and_unsigned_webhooks_are_rejected(api: httpx.AsyncClient) -> None:
    body = event_body("email.delivered", email_id="inv_0000")
    forged = svix_headers(body, secret="whsec_" + "QUJDREVGR0hJSktMTU5PUA==")
    stale = svix_headers(body, timestamp=int(time.time()) - 6 * 60)
    tampered = svix_headers(body)

    assert (await api.post(WEBHOOK_URL, content=body, headers=forged)).status_code == 401
    assert (await api.post(WEBHOOK_URL, content=body, headers=stale)).status_code == 401
    assert (await api.post(WEBHOOK_URL, content=body)).status_code == 401
    # The same signature over re-serialised JSON (other bytes) must not verify.
    reserialised = json.dumps(json.loads(body)).encode()
    assert (await api.post(WEBHOOK_URL, content=reserialised, headers=tampered)).status_code == 401


async def test_webhook_without_a_configured_secret_answers_503(
    api: httpx.AsyncClient, settings: Settings
) -> None:
    settings.resend_webhook_secret = None
    body = event_body("email.delivered", email_id="inv_0000")
    response = await api.post(WEBHOOK_URL, content=body, headers=svix_headers(body))
    assert response.status_code == 503


async def test_event_for_an_unknown_email_is_acknowledged(api: httpx.AsyncClient) -> None:
    response = await post_event(api, "email.delivered", email_id="inv_doesnotexist")
    assert response.status_code == 200
    assert response.json() == {"status": "unknown_email"}
    no_tags = await post_event(api, "email.bounced", email_id=None, provider_id="re-nobody")
    assert no_tags.json() == {"status": "unknown_email"}
    other = await post_event(api, "contact.created", email_id="inv_doesnotexist")
    assert other.json() == {"status": "ignored"}


async def test_delivered_invite_shows_in_status_timeline_attributes_and_list(
    api: httpx.AsyncClient, worker: None, client: Client, fake_resend: FakeResendServer
) -> None:
    tenant_id = tenant()
    body = (await api.post("/v1/invites", json={**INVITE, "tenant_id": tenant_id})).json()
    invite_id = body["invite_id"]
    await wait_for_status(api, invite_id, "sent")

    # Resend delivers at least once: the same svix-id twice is one event.
    for _ in range(2):
        delayed = await post_event(
            api, "email.delivery_delayed", email_id=invite_id, msg_id="msg_delayed1"
        )
        assert delayed.json() == {"status": "accepted"}
    await wait_for_status(api, invite_id, "delivery_delayed")
    delivered = await post_event(api, "email.delivered", email_id=invite_id, msg_id="msg_ok1")
    assert delivered.json() == {"status": "accepted"}

    status = await wait_for_status(api, invite_id, "delivered")
    assert [e["event_id"] for e in status["delivery_events"]] == ["msg_delayed1", "msg_ok1"]
    timeline = (await api.get(f"/v1/emails/{invite_id}/events")).json()
    kinds = [e["type"] for e in timeline["events"]]
    assert kinds == ["accepted", "attempt", "sent", "delivery", "delivery"]
    assert timeline["events"][-1]["event_type"] == "email.delivered"
    assert all(e["at"] for e in timeline["events"])

    item = await eventually(
        lambda: listed(api, f"status=delivered&tenant_id={tenant_id}", invite_id)
    )
    assert item["kind"] == "invite" and item["provider_message_id"] == status["provider_message_id"]

    # Delivered is not the end: the recipient can still mark it as spam.
    handle = client.get_workflow_handle(body["workflow_id"])
    assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
    complained = await post_event(api, "email.complained", email_id=invite_id, msg_id="msg_c1")
    assert complained.json() == {"status": "accepted"}
    status = await wait_for_status(api, invite_id, "complained")
    assert [e["event_id"] for e in status["delivery_events"]][-1] == "msg_c1"

    async def upserted() -> Any:
        attributes = (await handle.describe()).typed_search_attributes
        return attributes if attributes.get(EMAIL_STATUS) == "complained" else None

    attributes = await eventually(upserted, what="EmailStatus complained")
    # An invite's life goes on after its email's last event: until accepted, revoked, expired.
    assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
    assert attributes.get(EMAIL_KIND) == "invite"
    assert attributes.get(TENANT_ID) == tenant_id
    assert attributes.get(PROVIDER_MESSAGE_ID) == fake_resend.fake.deliveries[0].id


async def test_bounce_found_by_provider_id_is_listed_by_the_temporal_cli(
    api: httpx.AsyncClient, worker: None, client: Client, settings: Settings
) -> None:
    tenant_id = tenant()
    email = {"to": "ann@example.com", "subject": "Hi", "text": "hello", "tenant_id": tenant_id}
    body = (await api.post("/v1/emails", json=email)).json()
    sent = await wait_for_status(api, body["id"], "sent")

    # No tags: the route finds the send by its provider id (visibility is eventual).
    async def bounce() -> bool:
        response = await post_event(
            api, "email.bounced", email_id=None, provider_id=sent["provider_message_id"]
        )
        return bool(response.json() == {"status": "accepted"})

    await eventually(bounce)
    status = await wait_for_status(api, body["id"], "bounced")
    assert status["delivery_events"][0]["detail"] == "Permanent/General"
    assert "ann@example.com" not in json.dumps(status["delivery_events"])

    async def cli_lists_it() -> str | None:
        proc = await asyncio.create_subprocess_exec(
            temporal_binary(), "workflow", "list",
            "--address", settings.temporal_address,
            "--query", f'EmailStatus="bounced" AND TenantId="{tenant_id}"',
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, _ = await proc.communicate()
        text = out.decode()
        return text if body["workflow_id"] in text else None

    await eventually(cli_lists_it)
    assert await eventually(
        lambda: listed(api, f"status=bounced&kind=email&tenant_id={tenant_id}", body["id"])
    )


async def test_event_that_overtakes_the_send_is_applied_after_it(
    api: httpx.AsyncClient, worker: None, fake_resend: FakeResendServer
) -> None:
    fake_resend.fake.configure(latency=1.5)
    body = (await api.post("/v1/invites", json=INVITE)).json()
    await wait_for_status(api, body["invite_id"], "sending")
    response = await post_event(api, "email.delivered", email_id=body["invite_id"])
    assert response.json() == {"status": "accepted"}
    early = (await api.get(body["status_url"])).json()
    assert early["status"] == "sending" and len(early["delivery_events"]) == 1

    status = await wait_for_status(api, body["invite_id"], "delivered")
    assert status["sent_at"] is not None
    fake_resend.fake.configure(latency=0.0)


async def test_event_after_the_delivery_wait_is_acknowledged(
    api: httpx.AsyncClient, worker: None, client: Client, settings: Settings
) -> None:
    settings.delivery_wait_seconds = 0.5
    email = {"to": "ann@example.com", "subject": "Hi", "text": "hello"}
    body = (await api.post("/v1/emails", json=email)).json()
    result = await client.get_workflow_handle(body["workflow_id"]).result()
    assert result["status"] == "sent"
    late = await post_event(api, "email.delivered", email_id=body["id"])
    assert late.status_code == 200 and late.json() == {"status": "unknown_email"}


async def test_scheduled_email_can_be_cancelled_before_it_goes_out(
    api: httpx.AsyncClient, worker: None, fake_resend: FakeResendServer
) -> None:
    tenant_id = tenant()
    send_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    email = {"to": "ann@example.com", "subject": "Later", "text": "hi", "tenant_id": tenant_id}
    body = (await api.post("/v1/emails", json={**email, "send_at": send_at})).json()
    status = await wait_for_status(api, body["id"], "scheduled")
    assert status["send_at"].startswith(send_at.removesuffix("Z"))
    assert await eventually(
        lambda: listed(api, f"status=scheduled&tenant_id={tenant_id}", body["id"])
    )

    cancelled = await api.delete(f"/v1/emails/{body['id']}")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    status = await wait_for_status(api, body["id"], "cancelled")
    assert status["cancelled_at"] and status["attempt_count"] == 0
    assert (await api.delete(f"/v1/emails/{body['id']}")).status_code == 409
    events = (await api.get(f"/v1/emails/{body['id']}/events")).json()["events"]
    assert [e["type"] for e in events] == ["accepted", "scheduled", "cancelled"]
    assert await eventually(
        lambda: listed(api, f"status=cancelled&tenant_id={tenant_id}", body["id"])
    )
    assert fake_resend.fake.requests_total == 0


async def test_scheduled_email_goes_out_at_send_at(
    api: httpx.AsyncClient, worker: None, fake_resend: FakeResendServer
) -> None:
    send_at = time.time() + 2
    iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(send_at)) + "+00:00"
    body = (await api.post("/v1/invites", json={**INVITE, "send_at": iso})).json()
    await wait_for_status(api, body["invite_id"], "scheduled")
    await wait_for_status(api, body["invite_id"], "sent", timeout=20)
    assert fake_resend.fake.deliveries[0].received_at_wall >= int(send_at)


async def test_send_at_in_the_past_or_beyond_30_days_is_rejected(api: httpx.AsyncClient) -> None:
    email = {"to": "ann@example.com", "subject": "Hi", "text": "hello"}
    for send_at in ("2020-01-01T00:00:00Z", "2999-01-01T00:00:00Z", "2030-01-01T00:00:00"):
        response = await api.post("/v1/emails", json={**email, "send_at": send_at})
        assert response.status_code == 422, send_at
        [error] = response.json()["detail"]
        assert error["loc"] == ["body", "send_at"], error


async def test_same_key_repeat_of_a_scheduled_request_replays_after_send_at_passed(
    api: httpx.AsyncClient, worker: None, fake_resend: FakeResendServer
) -> None:
    send_at = time.time() + 1.5
    iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(send_at)) + ".9+00:00"
    body, key = {**INVITE, "send_at": iso}, {"Idempotency-Key": tenant()}
    first = await api.post("/v1/invites", json=body, headers=key)
    assert first.status_code == 202, first.text
    await wait_for_status(api, first.json()["invite_id"], "sent", timeout=20)

    # send_at is now in the past: the repeat still gets the original answer, not a 422.
    again = await api.post("/v1/invites", json=body, headers=key)
    assert again.status_code == 202, again.text
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    other = {**body, "email": "eve@example.com"}
    assert (await api.post("/v1/invites", json=other, headers=key)).status_code == 409
    fresh = {"Idempotency-Key": tenant()}
    assert (await api.post("/v1/invites", json=body, headers=fresh)).status_code == 422
    assert fake_resend.fake.delivered_count == 1


async def test_cancel_after_the_send_is_a_conflict(api: httpx.AsyncClient, worker: None) -> None:
    body = (await api.post("/v1/invites", json=INVITE)).json()
    await wait_for_status(api, body["invite_id"], "sent")
    response = await api.delete(f"/v1/emails/{body['invite_id']}")
    assert response.status_code == 409
    assert "sent" in response.json()["detail"]
    assert (await api.delete("/v1/emails/inv_nothere")).status_code in (404, 409)


async def test_retrying_send_is_cancellable_only_while_provably_unsent(
    alone: None, api: httpx.AsyncClient, worker: None, fake_resend: FakeResendServer
) -> None:
    # Alone: a coalesced email cannot be cancelled once a call has claimed it, whatever the
    # call's attempts proved (tests/test_coalesce.py, a cancel racing the composition).
    # A 429 proves the provider did not take the email: cancelling is safe.
    fake_resend.fake.enqueue_faults([Fault(status=429, retry_after=30)])
    limited = (await api.post("/v1/invites", json=INVITE)).json()["invite_id"]
    await wait_for_status(api, limited, "retrying")
    assert (await api.delete(f"/v1/emails/{limited}")).status_code == 200
    await wait_for_status(api, limited, "cancelled")

    # After a 500 the outcome is unknown (it may have gone out): no cancel.
    fake_resend.fake.enqueue_faults([Fault(status=500, retry_after=30)])
    unknown = (await api.post("/v1/invites", json=INVITE)).json()["invite_id"]
    await wait_for_status(api, unknown, "retrying")
    refused = await api.delete(f"/v1/emails/{unknown}")
    assert refused.status_code == 409, refused.text
    assert fake_resend.fake.delivered_count == 0


async def test_list_pages_with_a_token(api: httpx.AsyncClient, worker: None) -> None:
    tenant_id = tenant()
    ids = [
        (await api.post("/v1/invites", json={**INVITE, "tenant_id": tenant_id})).json()["invite_id"]
        for _ in range(3)
    ]

    async def all_visible() -> bool:
        page = (await api.get(f"/v1/emails?tenant_id={tenant_id}&limit=100")).json()
        return len(page["items"]) == 3

    await eventually(all_visible)
    first = (await api.get(f"/v1/emails?tenant_id={tenant_id}&limit=2")).json()
    assert len(first["items"]) == 2 and first["next_page_token"]
    token = first["next_page_token"]
    second = (await api.get(f"/v1/emails?tenant_id={tenant_id}&limit=2&page_token={token}")).json()
    assert {i["id"] for i in first["items"] + second["items"]} == set(ids)
    assert (await api.get("/v1/emails?status=nonsense")).status_code == 422
    assert (await api.get('/v1/emails?tenant_id=x" OR 1=1')).status_code == 422


async def test_api_metrics_count_requests_by_route(api: httpx.AsyncClient) -> None:
    await api.get("/v1/emails/inv_nothere/events")
    text = (await api.get("/metrics")).text
    assert 'route="/v1/emails/{email_id}/events"' in text
    assert "durable_mail_http_request_duration_seconds_bucket" in text
