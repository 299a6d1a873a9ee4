"""Invites per tenant: scoped like every route, and in the tenant's link hosts, page and brand."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from config import BrandConfig, Settings
from testkit.fake_resend import FakeResendServer
from testkit.keys import ACME_KEY, API_KEY, GLOBEX_KEY
from tests.conftest import Tenants
from tests.helpers import INVITE, link_token, wait_for_status

NOT_FOUND = {"detail": "no invite with this id"}


@pytest.fixture
async def http(app: FastAPI) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    """One client per key: acme's, globex's and the operator's."""
    transport = httpx.ASGITransport(app=app)
    clients = {
        name: httpx.AsyncClient(
            transport=transport,
            base_url="http://api.test",
            headers={"Authorization": f"Bearer {key}"},
        )
        for name, key in (("acme", ACME_KEY), ("globex", GLOBEX_KEY), ("operator", API_KEY))
    }
    yield clients
    for client in clients.values():
        await client.aclose()


@pytest.fixture
def acme_look(settings: Settings, tenants: Tenants) -> None:
    """acme's own app page, link hosts and brand; globex keeps the defaults (with a sender
    of its own, so that it may invite at all)."""
    settings.tenants[tenants.globex] = settings.tenants[tenants.globex].model_copy(
        update={"email_from": "Globex <hi@globex.example>"}
    )
    settings.tenants[tenants.acme] = settings.tenants[tenants.acme].model_copy(
        update={
            "app_base_url": "https://app.acme.example/team",
            "invite_url_hosts": ["join.acme.example"],
            "brand": BrandConfig(
                product_name="Acme Cloud", accent_color="#ff5500", footer="Acme Inc., Springfield"
            ),
        }
    )


async def test_another_tenants_invite_is_not_found_and_does_not_change(
    http: dict[str, httpx.AsyncClient],
    worker: None,
    fake_resend: FakeResendServer,
    tenants: Tenants,
) -> None:
    acme, globex, operator = http["acme"], http["globex"], http["operator"]
    created = await acme.post("/v1/invites", json=INVITE)
    assert created.status_code == 202, created.text
    invite_id = created.json()["invite_id"]
    await wait_for_status(acme, invite_id, "sent")
    token = link_token(fake_resend.fake.deliveries[0].payload["text"])

    assert (await globex.get(f"/v1/invites/{invite_id}")).json() == NOT_FOUND
    stolen = await globex.post(f"/v1/invites/{invite_id}/accept", json={"token": token})
    assert (stolen.status_code, stolen.json()) == (404, NOT_FOUND)
    revoked = await globex.delete(f"/v1/invites/{invite_id}")
    assert (revoked.status_code, revoked.json()) == (404, NOT_FOUND)

    view = (await operator.get(f"/v1/invites/{invite_id}")).json()
    assert (view["status"], view["wrong_tokens"], view["tenant_id"]) == ("pending", 0, tenants.acme)
    accepted = await acme.post(f"/v1/invites/{invite_id}/accept", json={"token": token})
    assert accepted.status_code == 200
    assert accepted.json()["tenant_id"] == tenants.acme
    # Once ended (its workflow closed), still another tenant's: 404, not 409.
    late = await globex.post(f"/v1/invites/{invite_id}/accept", json={"token": token})
    assert (late.status_code, late.json()) == (404, NOT_FOUND)


async def test_a_tenants_link_hosts_replace_the_default(
    http: dict[str, httpx.AsyncClient], acme_look: None
) -> None:
    acme, globex = http["acme"], http["globex"]
    own = {**INVITE, "accept_url": "https://join.acme.example/i/42?code=x"}
    default_host = {**INVITE, "accept_url": "https://app.example.test/i/42"}

    assert (await acme.post("/v1/invites/preview", json=own)).status_code == 200
    refused = await acme.post("/v1/invites/preview", json=default_host)
    assert refused.status_code == 422
    assert "join.acme.example" in refused.json()["detail"][0]["msg"]
    assert (await globex.post("/v1/invites/preview", json=default_host)).status_code == 200
    assert (await globex.post("/v1/invites/preview", json=own)).status_code == 422


async def test_a_tenants_invite_links_to_its_app_page_in_its_brand_from_its_sender(
    http: dict[str, httpx.AsyncClient],
    worker: None,
    fake_resend: FakeResendServer,
    acme_look: None,
) -> None:
    created = await http["acme"].post("/v1/invites", json={**INVITE, "locale": "fr"})
    invite_id = created.json()["invite_id"]
    await wait_for_status(http["acme"], invite_id, "sent")

    [delivery] = fake_resend.fake.deliveries
    payload = delivery.payload
    token = link_token(payload["text"])
    link = f"https://app.acme.example/team/invites/accept?invite={invite_id}&token={token}"
    assert link in payload["text"]
    assert payload["from"] == "Acme <hello@acme.example>"
    assert "background:#ff5500" in payload["html"] and "Acme Cloud" in payload["html"]
    assert payload["text"].rstrip().endswith("Acme Inc., Springfield")
    assert "Accepter l’invitation" in payload["text"]

    # globex's look is ours.
    other = await http["globex"].post("/v1/invites/preview", json=INVITE)
    assert "Acme Cloud" not in other.json()["invitation"]["html"]
    assert other.json()["invitation"]["text"].count("https://app.example.test/invites/") == 1
