"""Batch sends end to end: POST /v1/emails/batch and /v1/invites/batch -> SendBatch ->
deliver_email_batch -> the fake Resend's POST /emails/batch; items read and tracked one by one."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from temporalio.client import Client

from activities.delivery_contract import batch_sha256
from activities.types import BatchAttemptInput
from testkit.fake_resend import FakeResendServer, Fault
from tests.helpers import INVITE, wait_for_batch, wait_for_status
from tests.webhooks import post_event


def emails(n: int, **extra: Any) -> list[dict[str, Any]]:
    return [
        {"to": f"user{i}@example.com", "subject": f"Report {i}", "text": f"Hello {i}", **extra}
        for i in range(n)
    ]


def batch_requests(fake_resend: FakeResendServer) -> list[str]:
    return [r.path for r in fake_resend.fake.request_log if r.path.startswith("/emails")]


async def test_batch_of_100_emails_is_one_provider_request_and_each_item_is_sent(
    api: httpx.AsyncClient, worker: None, fake_resend: FakeResendServer
) -> None:
    response = await api.post("/v1/emails/batch", json={"emails": emails(100)})
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["id"].startswith("bat_")
    assert accepted["status_url"] == f"/v1/batches/{accepted['id']}"
    ids = [item["id"] for item in accepted["items"]]
    assert len(set(ids)) == 100
    assert all(item["status_url"] == f"/v1/emails/{item['id']}" for item in accepted["items"])

    batch = await wait_for_batch(api, accepted["id"], "sent")
    assert batch["counts"] == {"sent": 100} and batch["total"] == 100
    deliveries = fake_resend.fake.deliveries
    assert len(deliveries) == 100 and fake_resend.fake.duplicates() == []
    assert batch_requests(fake_resend) == ["/emails/batch"]
    # In request order: item n is the email to user n, and knows its provider id.
    assert [d.to for d in deliveries] == [[f"user{i}@example.com"] for i in range(100)]
    assert [i["provider_message_id"] for i in batch["items"]] == [d.id for d in deliveries]
    assert {d.idempotency_key for d in deliveries} == {f"{accepted['workflow_id']}/send/0"}
    assert {"name": "email_id", "value": ids[7]} in deliveries[7].payload["tags"]

    item = await wait_for_status(api, ids[42], "sent")
    assert item["kind"] == "email" and item["provider_message_id"] == deliveries[42].id
    assert [a["outcome"] for a in item["attempts"]] == ["accepted"]
    assert item["workflow_id"] == accepted["workflow_id"]
    timeline = (await api.get(f"/v1/emails/{ids[42]}/events")).json()
    assert [e["type"] for e in timeline["events"]] == ["accepted", "attempt", "sent"]


async def test_invite_batch_renders_each_invitation_and_sends_them_in_one_call(
    api: httpx.AsyncClient, worker: None, fake_resend: FakeResendServer
) -> None:
    invites = [{**INVITE, "email": f"guest{i}@example.com", "role": "admin"} for i in range(3)]
    response = await api.post("/v1/invites/batch", json={"invites": invites})
    assert response.status_code == 202, response.text
    ids = [item["id"] for item in response.json()["items"]]
    assert all(invite_id.startswith("inv_") for invite_id in ids)

    await wait_for_batch(api, response.json()["id"], "sent")
    deliveries = fake_resend.fake.deliveries
    assert batch_requests(fake_resend) == ["/emails/batch"]
    assert [d.to for d in deliveries] == [[f"guest{i}@example.com"] for i in range(3)]
    for invite_id, delivery in zip(ids, deliveries, strict=True):
        assert delivery.payload["subject"] == "Bob invited you to join Acme"
        assert f"/invites/accept?invite={invite_id}&token=" in delivery.payload["text"]
        assert {"name": "email_id", "value": invite_id} in delivery.payload["tags"]
    tokens = {d.payload["text"].split("token=")[1].split()[0] for d in deliveries}
    assert len(tokens) == 3
    status = await wait_for_status(api, ids[1], "sent")
    assert status["kind"] == "invite" and status["provider_message_id"] == deliveries[1].id


async def test_retried_batch_call_delivers_each_item_once(
    api: httpx.AsyncClient, worker: None, fake_resend: FakeResendServer, client: Client
) -> None:
    # A 500, then a call the provider accepts but answers after our 5 s client timeout.
    fake_resend.fake.enqueue_faults([Fault(status=500), Fault(hold=6.0)])
    response = await api.post("/v1/emails/batch", json={"emails": emails(3)})
    accepted = response.json()

    batch = await wait_for_batch(api, accepted["id"], "sent", timeout=30)
    deliveries = fake_resend.fake.deliveries
    assert len(deliveries) == 3 and fake_resend.fake.duplicates() == []
    outcomes = [a["outcome"] for a in batch["attempts"]]
    assert outcomes[0] == "transient_error" and batch["attempts"][0]["http_status"] == 500
    assert batch["attempts"][1]["error_type"] == "ProviderNetworkError"
    assert outcomes[-1] == "accepted" and set(outcomes[1:-1]) == {"transient_error"}
    # Every attempt sent the same key (the retry was answered with the first call's ids).
    key = f"{accepted['workflow_id']}/send/0"
    assert {r.idempotency_key for r in fake_resend.fake.request_log} == {key}
    assert [i["provider_message_id"] for i in batch["items"]] == [d.id for d in deliveries]
    assert batch["counts"] == {"sent": 3}

    # Each attempt is its own event in history, with the same key and the same digest of
    # the messages: the first carries them, later ones read them from the workflow.
    history = await client.get_workflow_handle(accepted["workflow_id"]).fetch_history()
    inputs = [
        (
            await client.data_converter.decode(
                e.activity_task_scheduled_event_attributes.input.payloads, [BatchAttemptInput]
            )
        )[0]
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
    ]
    assert len(inputs) == len(outcomes) >= 3
    assert [i.attempt for i in inputs] == list(range(1, len(inputs) + 1))
    first = inputs[0]
    assert first.messages is not None and first.messages_sha256 == batch_sha256(first.messages)
    assert all(i.messages is None for i in inputs[1:]) and first.not_after
    assert all(
        (i.messages_sha256, i.not_after, i.idempotency_key)
        == (first.messages_sha256, first.not_after, key)
        for i in inputs
    )
    # The window counts from the accept (the input, which a reset keeps): 23 h by default.
    not_after = datetime.fromisoformat(batch["not_after"])
    created = datetime.fromisoformat(batch["created_at"])
    assert timedelta(hours=22, minutes=59) < not_after - created <= timedelta(hours=23)


async def test_invalid_item_refuses_the_batch_with_its_index_and_starts_nothing(
    api: httpx.AsyncClient, worker: None, fake_resend: FakeResendServer
) -> None:
    bad = emails(5)
    bad[3]["to"] = "not-an-address"
    headers = {"Idempotency-Key": "import-2026-11-28"}
    refused = await api.post("/v1/emails/batch", json={"emails": bad}, headers=headers)
    assert refused.status_code == 422
    assert {tuple(e["loc"][:3]) for e in refused.json()["detail"]} == {("body", "emails", 3)}

    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    scheduled = emails(3)
    scheduled[1]["send_at"] = later
    invites = [INVITE, {**INVITE, "send_at": later}]
    for path, body in [
        ("/v1/emails/batch", {"emails": scheduled}),
        ("/v1/invites/batch", {"invites": invites}),
    ]:
        response = await api.post(path, json=body)
        assert response.status_code == 422, response.text
        [error] = response.json()["detail"]
        assert error["loc"][2] == 1 and "send_at is not supported" in error["msg"]
    too_many = await api.post("/v1/emails/batch", json={"emails": emails(101)})
    empty = await api.post("/v1/emails/batch", json={"emails": []})
    two_tenants = emails(2)
    two_tenants[1]["tenant_id"] = "other"
    mixed = await api.post("/v1/emails/batch", json={"emails": two_tenants})
    assert too_many.status_code == empty.status_code == mixed.status_code == 422
    assert "emails[1]: tenant_id differs" in mixed.text

    # Nothing was recorded under the key: the corrected batch is accepted, not a conflict.
    fixed = await api.post("/v1/emails/batch", json={"emails": emails(5)}, headers=headers)
    assert fixed.status_code == 202, fixed.text
    await wait_for_batch(api, fixed.json()["id"], "sent")
    assert batch_requests(fake_resend) == ["/emails/batch"]


async def test_item_refused_by_the_provider_fails_alone(
    api: httpx.AsyncClient, worker: None, fake_resend: FakeResendServer
) -> None:
    fake_resend.fake.enqueue_faults([Fault(invalid_items=(1,))])
    accepted = (await api.post("/v1/emails/batch", json={"emails": emails(3)})).json()

    batch = await wait_for_batch(api, accepted["id"], "sent")
    assert batch["counts"] == {"sent": 2, "failed": 1}
    assert [i["status"] for i in batch["items"]] == ["sent", "failed", "sent"]
    assert batch["items"][1]["error"]["type"] == "ProviderRejected"
    refused = await wait_for_status(api, accepted["items"][1]["id"], "failed")
    assert refused["last_error"]["type"] == "ProviderRejected"
    assert refused["attempts"][-1]["outcome"] == "permanent_error"
    assert refused["provider_message_id"] is None
    assert [d.to for d in fake_resend.fake.deliveries] == [
        ["user0@example.com"],
        ["user2@example.com"],
    ]


async def test_refused_call_fails_every_item(
    api: httpx.AsyncClient, worker: None, fake_resend: FakeResendServer, client: Client
) -> None:
    fake_resend.fake.enqueue_faults([Fault(status=403, name="invalid_api_key")])
    accepted = (await api.post("/v1/emails/batch", json={"emails": emails(2)})).json()

    batch = await wait_for_batch(api, accepted["id"], "failed")
    assert batch["counts"] == {"failed": 2}
    assert batch["last_error"]["type"] == "ProviderAuthFailed"
    item = await wait_for_status(api, accepted["items"][0]["id"], "failed")
    assert item["last_error"]["type"] == "ProviderAuthFailed"
    assert fake_resend.fake.delivered_count == 0


async def test_per_item_webhooks_reach_their_own_item(
    api: httpx.AsyncClient, worker: None, fake_resend: FakeResendServer
) -> None:
    accepted = (await api.post("/v1/emails/batch", json={"emails": emails(3)})).json()
    ids = [item["id"] for item in accepted["items"]]
    await wait_for_batch(api, accepted["id"], "sent")

    for _ in range(2):  # delivered at least once: the repeat is one event
        delivered = await post_event(api, "email.delivered", email_id=ids[0], msg_id="msg_d0")
        assert delivered.json() == {"status": "accepted"}
    bounced = await post_event(api, "email.bounced", email_id=ids[2], msg_id="msg_b2")
    assert bounced.json() == {"status": "accepted"}
    stranger = await post_event(api, "email.delivered", email_id=ids[0][:-1] + "9")
    assert stranger.json() == {"status": "accepted"}  # the batch is open, it drops the event

    first = await wait_for_status(api, ids[0], "delivered")
    third = await wait_for_status(api, ids[2], "bounced")
    second = await wait_for_status(api, ids[1], "sent")
    assert [e["event_id"] for e in first["delivery_events"]] == ["msg_d0"]
    assert third["delivery_events"][0]["detail"] == "Permanent/General"
    assert second["delivery_events"] == []
    batch = (await api.get(f"/v1/batches/{accepted['id']}")).json()
    assert batch["counts"] == {"delivered": 1, "sent": 1, "bounced": 1}
    timeline = (await api.get(f"/v1/emails/{ids[2]}/events")).json()
    assert [e["type"] for e in timeline["events"]] == ["accepted", "attempt", "sent", "delivery"]


async def test_repeated_batch_request_is_answered_from_the_first(
    api: httpx.AsyncClient, worker: None, fake_resend: FakeResendServer
) -> None:
    headers = {"Idempotency-Key": "weekly-digest-48"}
    body = {"emails": emails(2)}
    first = await api.post("/v1/emails/batch", json=body, headers=headers)
    again = await api.post("/v1/emails/batch", json=body, headers=headers)
    other = await api.post("/v1/emails/batch", json={"emails": emails(3)}, headers=headers)
    invites = await api.post("/v1/invites/batch", json={"invites": [INVITE]}, headers=headers)

    assert first.status_code == again.status_code == invites.status_code == 202
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    assert other.status_code == 409
    assert invites.json()["id"] != first.json()["id"]  # a key names one kind of batch
    await wait_for_batch(api, first.json()["id"], "sent")
    await wait_for_batch(api, invites.json()["id"], "sent")
    assert fake_resend.fake.delivered_count == 3


async def test_unknown_batches_and_items_are_404_and_items_are_not_cancellable(
    api: httpx.AsyncClient, worker: None
) -> None:
    accepted = (await api.post("/v1/emails/batch", json={"emails": emails(2)})).json()
    item_id = accepted["items"][1]["id"]
    await wait_for_batch(api, accepted["id"], "sent")
    key = accepted["id"].removeprefix("bat_")

    for path in [
        "/v1/batches/bat_doesnotexist",
        "/v1/batches/nonsense",
        f"/v1/emails/em_{key}_2",  # past the last item
        f"/v1/emails/inv_{key}_0",  # an email batch has no invite items
        f"/v1/emails/em_{key}_01",
        "/v1/emails/em_doesnotexist_0",
    ]:
        response = await api.get(path)
        assert response.status_code == 404, (path, response.text)
    email = await api.post("/v1/emails", json=emails(1)[0])
    not_a_batch = email.json()["id"].replace("em_", "bat_")
    assert (await api.get(f"/v1/batches/{not_a_batch}")).status_code == 404

    cancel = await api.delete(f"/v1/emails/{item_id}")
    assert cancel.status_code == 409 and "one by one" in cancel.json()["detail"]


async def test_long_retry_series_of_a_large_batch_records_its_messages_once(
    api: httpx.AsyncClient, worker: None, fake_resend: FakeResendServer, client: Client
) -> None:
    # ~450 KB of messages: recorded by every attempt, 13 attempts would write ~6 MB of
    # history (batches started before `batch-bounded-v1` did). Now: the input and the
    # first attempt only.
    big = emails(100, html="<p>" + "x" * 4400 + "</p>")
    failures = 12
    fake_resend.fake.enqueue_faults([Fault(status=500)] * failures)
    accepted = (await api.post("/v1/emails/batch", json={"emails": big})).json()

    batch = await wait_for_batch(api, accepted["id"], "sent", timeout=90)
    assert batch["attempt_count"] == failures + 1
    assert [a["attempt"] for a in batch["attempts"]] == list(range(1, failures + 2))
    assert [a["outcome"] for a in batch["attempts"]][-1] == "accepted"
    assert len(fake_resend.fake.deliveries) == 100 and fake_resend.fake.duplicates() == []
    key = f"{accepted['workflow_id']}/send/0"
    assert {r.idempotency_key for r in fake_resend.fake.request_log} == {key}
    # Every attempt sent the same payload (another under the same key would be a 409).
    assert {r.status for r in fake_resend.fake.request_log} == {500, 200}
    history = await client.get_workflow_handle(accepted["workflow_id"]).fetch_history()
    messages_bytes = sum(len(json.dumps(d.payload)) for d in fake_resend.fake.deliveries)
    history_bytes = sum(e.ByteSize() for e in history.events)
    assert messages_bytes > 400_000 and history_bytes < 2.5 * messages_bytes, history_bytes
