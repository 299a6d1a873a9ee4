"""`make dev`'s stand-in for the app's accept page: the invite link of an outbox email opens
`/dev/outbox/invites/accept`, whose button accepts the invite with the link's token.
Served with DEV_PAGES=true only (`make dev`), to a loopback `Host` only."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI
from temporalio.client import Client

from api.main import create_app
from config import Settings
from testkit.fake_resend import FakeResendServer
from tests.helpers import INVITE, wait_for_status

DEV_BASE = "http://localhost:8000/dev/outbox"


LOCAL = {"Host": "localhost:8000"}
PAGE = {**LOCAL, "Authorization": ""}  # the page needs no key, only a loopback host


@pytest.fixture
def app(client: Client, settings: Settings) -> FastAPI:
    """The API as `make dev` runs it without a Resend key (the worker still uses the fake)."""
    dev = settings.model_copy(
        update={"resend_api_key": None, "app_base_url": DEV_BASE, "dev_pages": True}
    )
    return create_app(dev, temporal_client=client)


async def test_the_invite_link_opens_a_page_that_accepts_once(
    api: httpx.AsyncClient, worker: None, fake_resend: FakeResendServer
) -> None:
    created = (await api.post("/v1/invites", json={**INVITE, "role": "admin"})).json()
    await wait_for_status(api, created["invite_id"], "sent")
    [delivery] = fake_resend.fake.deliveries
    link = next(w for w in delivery.payload["text"].split() if w.startswith(DEV_BASE))
    parts = urlsplit(link)
    assert parts.path == "/dev/outbox/invites/accept"
    assert parse_qs(parts.query)["invite"] == [created["invite_id"]]

    page = await api.get(f"{parts.path}?{parts.query}", headers=PAGE)
    assert page.status_code == 200 and "Accept the invite" in page.text
    assert page.headers["content-security-policy"] == "sandbox allow-forms"
    accepted = await api.post(f"{parts.path}?{parts.query}", headers=PAGE)
    assert accepted.status_code == 200 and "ann@example.com joined as" in accepted.text
    invite = (await api.get(f"/v1/invites/{created['invite_id']}")).json()
    assert invite["status"] == "accepted"
    again = await api.post(f"{parts.path}?{parts.query}", headers=PAGE)
    assert "Not accepted" in again.text

    wrong = await api.post(f"{parts.path}?invite={created['invite_id']}&token=no", headers=PAGE)
    assert "Not accepted" in wrong.text


async def test_only_on_a_loopback_host_and_only_with_dev_pages(
    api: httpx.AsyncClient, client: Client, settings: Settings
) -> None:
    path = "/dev/outbox/invites/accept?invite=inv_x&token=t"
    elsewhere = await api.get(path, headers={"Host": "evil.example", "Authorization": ""})
    assert elsewhere.status_code == 404
    # Without DEV_PAGES (the default) there is no such page.
    with_provider = httpx.ASGITransport(app=create_app(settings, temporal_client=client))
    async with httpx.AsyncClient(transport=with_provider, base_url="http://localhost") as http:
        assert (await http.get(path)).status_code == 404
