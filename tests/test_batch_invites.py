"""Batch invites live like single ones (issue 19): `POST /v1/invites/batch` -> one
`SendInviteBatch` -> one provider call; then each item is an invite at `/v1/invites/{item
id}`: read, accepted with the token its email carries, revoked, scoped to its tenant, on the
tenant's own app page, and no token in history. Expiry and the reminder call (days):
tests/test_invite_time.py."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from temporalio.client import Client

from activities.invite_tokens import PLACEHOLDER
from config import Settings
from testkit.fake_resend import Delivery, FakeResendServer
from tests.conftest import Tenants
from tests.helpers import (
    INVITE,
    link_token,
    readable_text,
    wait_for_batch,
)
from tests.test_invite_tenants import NOT_FOUND, acme_look, http  # noqa: F401 (fixtures)
from tests.webhooks import post_event


def guests(n: int, **extra: Any) -> list[dict[str, Any]]:
    return [{**INVITE, "email": f"guest{i}@example.com", **extra} for i in range(n)]


async def sent_batch(
    api: httpx.AsyncClient,
    fake_resend: FakeResendServer,
    n: int = 3,
    each: dict[str, Any] | None = None,
    **fields: Any,
) -> tuple[dict[str, Any], list[Delivery]]:
    """A batch of `n` invites (each with `each`, the batch with `fields`) whose call the
    provider took: (answer, each item's delivery)."""
    request = {"invites": guests(n, **(each or {})), **fields}
    response = await api.post("/v1/invites/batch", json=request)
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    await wait_for_batch(api, body["id"], "sent")
    by_to = {d.to[0]: d for d in fake_resend.fake.deliveries}
    return body, [by_to[f"guest{i}@example.com"] for i in range(n)]


async def test_each_batch_invite_reads_accepts_with_its_own_token_and_revokes(
    api: httpx.AsyncClient, worker: None, fake_resend: FakeResendServer, settings: Settings
) -> None:
    body, deliveries = await sent_batch(api, fake_resend, each={"role": "admin"})
    ids = [item["id"] for item in body["items"]]
    tokens = [link_token(d.payload["text"]) for d in deliveries]
    assert len(set(tokens)) == 3 and [r.path for r in fake_resend.fake.request_log] == [
        "/emails/batch"
    ]
    for invite_id, token, delivery in zip(ids, tokens, deliveries, strict=True):
        link = f"{settings.app_base_url}/invites/accept?invite={invite_id}&token={token}"
        assert link in delivery.payload["text"]

    view = (await api.get(f"/v1/invites/{ids[0]}")).json()
    assert (view["status"], view["role"], view["link"]) == ("pending", "admin", "managed")
    assert view["invitation"]["status"] == "sent"
    assert view["invitation"]["provider_message_id"] == deliveries[0].id

    # Item 1's token does not accept item 0; a wrong token is counted on its item only.
    crossed = await api.post(f"/v1/invites/{ids[0]}/accept", json={"token": tokens[1]})
    assert crossed.status_code == 404, crossed.text
    no_token = await api.post(f"/v1/invites/{ids[0]}/accept", json={})
    assert no_token.status_code == 422
    accepted = await api.post(f"/v1/invites/{ids[0]}/accept", json={"token": tokens[0]})
    assert accepted.status_code == 200, accepted.text
    assert (accepted.json()["status"], accepted.json()["invite_id"]) == ("accepted", ids[0])
    again = await api.post(f"/v1/invites/{ids[0]}/accept", json={"token": tokens[0]})
    assert again.status_code == 409
    counts = [(await api.get(f"/v1/invites/{i}")).json()["wrong_tokens"] for i in ids]
    assert counts == [1, 0, 0]

    revoked = await api.delete(f"/v1/invites/{ids[1]}")
    assert revoked.status_code == 200, revoked.text
    assert (revoked.json()["status"], revoked.json()["email_cancelled"]) == ("revoked", False)
    late = await api.post(f"/v1/invites/{ids[1]}/accept", json={"token": tokens[1]})
    assert late.status_code == 410
    same = await api.delete(f"/v1/invites/{ids[1]}")
    assert same.status_code == 200 and same.json()["revoked_at"] == revoked.json()["revoked_at"]
    assert (await api.delete(f"/v1/invites/{ids[0]}")).status_code == 409

    # The batch's and each item's email reads are unchanged.
    batch = (await api.get(f"/v1/batches/{body['id']}")).json()
    assert batch["counts"] == {"sent": 3}
    email = (await api.get(f"/v1/emails/{ids[2]}")).json()
    assert (email["status"], email["provider_message_id"]) == ("sent", deliveries[2].id)
    # The last pending invite accepted: the batch's life is over, and reads still answer.
    last = await api.post(f"/v1/invites/{ids[2]}/accept", json={"token": tokens[2]})
    assert last.status_code == 200, last.text
    key = body["id"].removeprefix("bat_")
    for path in (f"/v1/invites/inv_{key}_3", f"/v1/invites/em_{key}_0", f"/v1/invites/inv_{key}"):
        assert (await api.get(path)).status_code == 404, path


async def test_an_ended_batch_still_answers_for_each_invite(
    api: httpx.AsyncClient, worker: None, fake_resend: FakeResendServer, client: Client
) -> None:
    body, deliveries = await sent_batch(api, fake_resend, n=2)
    ids = [item["id"] for item in body["items"]]
    for invite_id in ids:
        assert (await api.delete(f"/v1/invites/{invite_id}")).status_code == 200
    await client.get_workflow_handle(body["workflow_id"]).result()
    views = [(await api.get(f"/v1/invites/{i}")).json() for i in ids]
    assert [v["status"] for v in views] == ["revoked", "revoked"]
    accept = await api.post(f"/v1/invites/{ids[0]}/accept", json={"token": "x"})
    assert accept.status_code == 410
    assert (await api.get(f"/v1/batches/{body['id']}")).json()["counts"] == {"sent": 2}


async def test_a_batch_invite_is_its_tenant_s_on_its_app_page(
    http: dict[str, httpx.AsyncClient],  # noqa: F811
    acme_look: None,  # noqa: F811
    worker: None,
    fake_resend: FakeResendServer,
    tenants: Tenants,
) -> None:
    acme, globex = http["acme"], http["globex"]
    response = await acme.post("/v1/invites/batch", json={"invites": guests(2)})
    assert response.status_code == 202, response.text
    ids = [item["id"] for item in response.json()["items"]]
    await wait_for_batch(acme, response.json()["id"], "sent")
    text = fake_resend.fake.deliveries[0].payload["text"]
    assert "https://app.acme.example/team/invites/accept?invite=" in text
    token = link_token(text)
    invite_id = next(i for i in ids if f"invite={i}&" in text)

    assert (await globex.get(f"/v1/invites/{invite_id}")).json() == NOT_FOUND
    stolen = await globex.post(f"/v1/invites/{invite_id}/accept", json={"token": token})
    assert (stolen.status_code, stolen.json()) == (404, NOT_FOUND)
    assert (await globex.delete(f"/v1/invites/{invite_id}")).status_code == 404
    mine = await acme.post(f"/v1/invites/{invite_id}/accept", json={"token": token})
    assert mine.status_code == 200, mine.text
    assert mine.json()["tenant_id"] == tenants.acme


async def test_batch_invites_take_the_batch_s_locale_and_refuse_a_reminder_past_expiry(
    api: httpx.AsyncClient, worker: None, fake_resend: FakeResendServer
) -> None:
    body, deliveries = await sent_batch(api, fake_resend, n=1, locale="de")
    assert deliveries[0].payload["subject"] != "Bob invited you to join Acme"
    view = (await api.get(f"/v1/invites/{body['items'][0]['id']}")).json()
    assert view["locale"] == "de"
    late = {"invites": guests(1), "remind_after_days": 3, "expires_in_days": 3}
    assert (await api.post("/v1/invites/batch", json=late)).status_code == 422
    per_item = {"invites": guests(1, expires_in_days=3)}
    refused = await api.post("/v1/invites/batch", json=per_item)
    assert refused.status_code == 422 and "given once beside" in refused.text


async def test_no_batch_invite_token_in_clear_in_the_raw_history_or_the_logs(
    uncoded: tuple[httpx.AsyncClient, Client],
    fake_resend: FakeResendServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    api, plain = uncoded
    body, deliveries = await sent_batch(api, fake_resend, n=2, remind_after_days=2)
    tokens = [link_token(d.payload["text"]) for d in deliveries]
    ids = [item["id"] for item in body["items"]]
    event = await post_event(api, "email.delivered", email_id=ids[0], message="invitation")
    assert event.status_code == 200
    wrong = await api.post(f"/v1/invites/{ids[0]}/accept", json={"token": "x"})
    accepted = await api.post(f"/v1/invites/{ids[0]}/accept", json={"token": tokens[0]})
    assert (wrong.status_code, accepted.status_code) == (404, 200)

    history = await plain.get_workflow_handle(body["workflow_id"]).fetch_history()
    text = "\n".join(readable_text(history.to_json_dict()))
    assert "Accept the invitation" in text and PLACEHOLDER in text
    for token in tokens:
        assert token not in text
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "accepted" in logged
    assert not any(token in logged for token in tokens)
