"""Suppressions, per tenant: Resend's API (`resend.Suppressions.add/list/get/remove`) and
`/v1/suppressions`, and the check in the delivery loop: a send to a suppressed address is
accepted, then ends `suppressed` with no provider request; another tenant's is unaffected.

The real stack of tests/test_resend_compat.py (dev server, worker, API, fake Resend).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import resend
import resend.exceptions

from testkit.fake_resend import FakeResendServer
from testkit.keys import ACME_KEY, GLOBEX_KEY
from testkit.polling import eventually
from tests.helpers import INVITE, wait_for_status
from tests.test_resend_compat import (
    Stack,
    call,
    deliveries_of,
    email,
    needs_node_sdk,
    run_node,
    stack,  # noqa: F401  (the module's stack)
    wait_last_event,
)
from tests.webhooks import WEBHOOK_URL, svix_headers


@pytest.fixture
def acme(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:  # noqa: F811
    monkeypatch.setattr(resend, "api_url", stack.url)
    monkeypatch.setattr(resend, "api_key", ACME_KEY)
    yield stack


def address() -> str:
    return f"gone-{uuid.uuid4().hex[:8]}@example.com"


async def send_to(to: str, sender: str = "Acme <invites@acme.example>") -> str:
    email_id: str = (await call(resend.Emails.send, email(to=[to], **{"from": sender})))["id"]
    return email_id


async def test_suppressed_address_ends_suppressed_without_a_provider_call_until_removed(
    acme: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    to = address()
    added = await call(resend.Suppressions.add, {"email": to.upper()})
    assert added["object"] == "suppression" and added["id"].startswith("sup_")
    got: dict[str, Any] = dict(await call(resend.Suppressions.get, to))
    assert (got["id"], got["email"], got["origin"]) == (added["id"], to, "manual")
    listed = await call(resend.Suppressions.list, {"origin": "manual"})
    assert to in [e["email"] for e in listed["data"]]
    assert (await call(resend.Suppressions.list, {"origin": "bounce"}))["data"] == []

    held = await send_to(to)
    assert (await wait_last_event(held, "suppressed"))["last_event"] == "suppressed"
    assert deliveries_of(acme.fake, held) == []

    # Another tenant's send to the same address goes out.
    monkeypatch.setattr(resend, "api_key", GLOBEX_KEY)
    other = await send_to(to, "Globex <hello@globex.example>")
    await wait_last_event(other, "sent", "delivered")
    assert len(deliveries_of(acme.fake, other)) == 1
    with pytest.raises(resend.exceptions.ResendError) as raised:
        await call(resend.Suppressions.get, to)
    assert raised.value.code == 404

    monkeypatch.setattr(resend, "api_key", ACME_KEY)
    removed = await call(resend.Suppressions.remove, added["id"])
    assert (removed["id"], removed["deleted"]) == (added["id"], True)
    sent = await send_to(to)
    await wait_last_event(sent, "sent", "delivered")
    assert len(deliveries_of(acme.fake, sent)) == 1


async def test_sdk_list_pages_and_unknown_entries(acme: Stack) -> None:
    emails = [address() for _ in range(3)]
    ids = [(await call(resend.Suppressions.add, {"email": e}))["id"] for e in emails]
    again = await call(resend.Suppressions.add, {"email": emails[0]})
    assert again["id"] == ids[0]  # listed already: its entry
    first = await call(resend.Suppressions.list, {"limit": 2})
    assert [e["id"] for e in first["data"]] == [ids[2], ids[1]] and first["has_more"]
    rest = await call(resend.Suppressions.list, {"limit": 2, "after": ids[1]})
    assert ids[0] in [e["id"] for e in rest["data"]]
    with pytest.raises(resend.exceptions.ResendError) as raised:
        await call(resend.Suppressions.remove, "nobody@example.com")
    assert (raised.value.code, raised.value.error_type) == (404, "not_found")
    with pytest.raises(resend.exceptions.ValidationError):
        await call(resend.Suppressions.add, {"email": "not-an-address"})


async def test_v1_suppressions_per_tenant(acme: Stack) -> None:
    to = address()
    async with httpx.AsyncClient(base_url=acme.url, timeout=10) as http:
        as_acme = {"Authorization": f"Bearer {ACME_KEY}"}
        as_globex = {"Authorization": f"Bearer {GLOBEX_KEY}"}
        created = await http.post("/v1/suppressions", json={"email": to}, headers=as_acme)
        assert created.status_code == 201 and created.json()["origin"] == "manual"
        page = (await http.get("/v1/suppressions", headers=as_acme)).json()
        assert to in [e["email"] for e in page["items"]]
        assert (await http.get(f"/v1/suppressions/{to}", headers=as_globex)).status_code == 404
        assert (await http.delete(f"/v1/suppressions/{to}", headers=as_globex)).status_code == 404
        gone = await http.delete(f"/v1/suppressions/{created.json()['id']}", headers=as_acme)
        assert gone.status_code == 204
        assert (await http.get(f"/v1/suppressions/{to}", headers=as_acme)).status_code == 404


async def test_permanent_bounce_suppresses_then_the_next_send_is_held_until_removed(
    acme: Stack,
) -> None:
    to = address()
    first = await send_to(to)
    await wait_last_event(first, "sent")
    async with httpx.AsyncClient(base_url=acme.url, timeout=10) as http:
        # The provider's webhook: a permanent bounce of our email (our id in its tags).
        body = json.dumps(
            {
                "type": "email.bounced",
                "created_at": "2026-12-04T10:00:01.000Z",
                "data": {
                    "email_id": deliveries_of(acme.fake, first)[0].id,
                    "to": [to],
                    "tags": {"kind": "email", "email_id": first},
                    "bounce": {"type": "Permanent", "subType": "General", "message": "gone"},
                },
            },
            separators=(",", ":"),
        ).encode()
        answer = await http.post(WEBHOOK_URL, content=body, headers=svix_headers(body))
        assert answer.status_code < 300
    await wait_last_event(first, "bounced")

    async def listed() -> dict[str, Any] | None:
        found = await call(resend.Suppressions.list, {"origin": "bounce"})
        return next((dict(e) for e in found["data"] if e["email"] == to), None)

    entry = await eventually(listed, timeout=20, what="the bounced address listed")
    assert entry["source_id"] == first
    held = await send_to(to)
    await wait_last_event(held, "suppressed")
    assert deliveries_of(acme.fake, held) == []
    await call(resend.Suppressions.remove, to)
    again = await send_to(to)
    await wait_last_event(again, "sent", "delivered")
    assert len(deliveries_of(acme.fake, again)) == 1


async def test_batch_items_to_suppressed_addresses_leave_the_call(acme: Stack) -> None:
    gone, kept = address(), address()
    await call(resend.Suppressions.add, {"email": gone})
    calls_before = len(acme.fake.deliveries)
    sent = await call(resend.Batch.send, [email(to=[gone]), email(to=[kept]), email(to=[gone])])
    held_a, going, held_b = (d["id"] for d in sent["data"])
    await wait_last_event(going, "sent", "delivered")
    for held in (held_a, held_b):
        assert (await wait_last_event(held, "suppressed"))["last_event"] == "suppressed"
    # One provider call carrying the one email left.
    new = acme.fake.deliveries[calls_before:]
    assert [d.to for d in new] == [[kept]]
    assert deliveries_of(acme.fake, held_a) == deliveries_of(acme.fake, held_b) == []

    only_gone = await call(resend.Batch.send, [email(to=[gone]), email(to=[gone.upper()])])
    for item in only_gone["data"]:
        await wait_last_event(item["id"], "suppressed")
    assert len(acme.fake.deliveries) == calls_before + 1


async def test_an_invite_to_a_suppressed_address_ends_suppressed_unsent(
    api: httpx.AsyncClient, worker: None, fake_resend: FakeResendServer
) -> None:
    """In-process API and worker (tests/conftest.py), tenant acme of this test (never the
    operator's list: its workflow id is the same in every test of the session)."""
    api.headers["Authorization"] = f"Bearer {ACME_KEY}"
    added = await api.post("/v1/suppressions", json={"email": INVITE["email"]})
    assert added.status_code == 201
    created = await api.post("/v1/invites", json=INVITE)
    assert created.status_code == 202, created.text
    status = await wait_for_status(api, created.json()["invite_id"], "suppressed")
    assert status["last_error"]["type"] == "RecipientSuppressed"
    assert fake_resend.fake.deliveries == []


async def test_lists_are_per_tenant_so_an_operator_key_is_refused_clearly(
    api: httpx.AsyncClient,
) -> None:
    v1 = await api.post("/v1/suppressions", json={"email": "x@example.com"})
    assert v1.status_code == 400 and "belongs to a tenant" in v1.json()["detail"]
    resend_surface = await api.get("/suppressions")
    assert resend_surface.status_code == 400
    assert resend_surface.json()["name"] == "validation_error"


async def test_permanent_bounce_of_a_batch_email_suppresses_its_address(acme: Stack) -> None:
    gone, kept = address(), address()
    sent = await call(resend.Batch.send, [email(to=[gone]), email(to=[kept])])
    bounced, delivered = (d["id"] for d in sent["data"])
    await wait_last_event(bounced, "sent")
    async with httpx.AsyncClient(base_url=acme.url, timeout=10) as http:
        for email_id, to, event in (
            (bounced, gone, "email.bounced"),
            (delivered, kept, "email.delivered"),
        ):
            data: dict[str, Any] = {
                "email_id": deliveries_of(acme.fake, email_id)[0].id,
                "to": [to],
                "tags": {"kind": "email", "email_id": email_id},
            }
            if event == "email.bounced":
                data["bounce"] = {"type": "Permanent", "subType": "General", "message": "gone"}
            body = json.dumps(
                {"type": event, "created_at": "2026-12-04T10:00:01.000Z", "data": data},
                separators=(",", ":"),
            ).encode()
            answer = await http.post(WEBHOOK_URL, content=body, headers=svix_headers(body))
            assert answer.status_code < 300

    async def listed() -> dict[str, Any] | None:
        found = await call(resend.Suppressions.list, {"origin": "bounce"})
        return next((dict(e) for e in found["data"] if e["email"] == gone), None)

    entry = await eventually(listed, timeout=20, what="the bounced batch address listed")
    assert entry["source_id"] == bounced
    emails = (await call(resend.Suppressions.list, {}))["data"]
    assert kept not in {e["email"] for e in emails}
    held = await send_to(gone)
    await wait_last_event(held, "suppressed")


@needs_node_sdk
async def test_node_sdk_adds_gets_lists_and_removes(acme: Stack) -> None:
    to = address()
    answers = await run_node("suppressions.cjs", acme.url, ACME_KEY, ADDRESS=to)
    added = answers["added"]["data"]
    assert added["object"] == "suppression" and added["id"]
    assert answers["got"]["data"]["email"] == to and answers["got"]["data"]["origin"] == "manual"
    assert to in {e["email"] for e in answers["listed"]["data"]["data"]}
    assert answers["removed"]["error"] is None
    assert answers["gone"]["data"] is None and answers["gone"]["error"]["name"] == "not_found"
    # Sending to it works again once removed.
    again = await send_to(to)
    await wait_last_event(again, "sent", "delivered")
