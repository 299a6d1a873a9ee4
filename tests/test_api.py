"""The HTTP edge: validation, generic emails, status reads, health, Temporal outages."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from google.protobuf.json_format import MessageToJson
from temporalio.client import Client

from api import listing
from api.main import create_app
from config import Settings
from testkit.fake_resend import FakeResendServer
from testkit.keys import FAKE_KEY
from tests.helpers import INVITE, app_without_temporal, asgi_client, wait_for_status

EMAIL = {"to": "ann@example.com", "subject": "Your report", "text": "Hello", "html": "<p>Hi</p>"}


async def test_generic_email_is_sent_once_with_tags_and_default_sender(
    api: httpx.AsyncClient, worker: None, fake_resend: FakeResendServer, settings: Settings
) -> None:
    response = await api.post(
        "/v1/emails",
        json={**EMAIL, "to": ["ann@example.com", "bob@example.com"], "tags": [
            {"name": "campaign", "value": "q4"}
        ]},
    )  # fmt: skip
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["id"].startswith("em_") and body["workflow_id"].startswith("email-")

    status = await wait_for_status(api, body["id"], "sent")
    [delivery] = fake_resend.fake.deliveries
    assert delivery.to == ["ann@example.com", "bob@example.com"]
    assert delivery.payload["from"] == settings.email_from
    assert delivery.payload["html"] == "<p>Hi</p>"
    assert {"name": "campaign", "value": "q4"} in delivery.payload["tags"]
    assert {"name": "email_id", "value": body["id"]} in delivery.payload["tags"]
    assert status["kind"] == "email" and status["transport"] == "resend"


@pytest.mark.parametrize(
    ("path", "payload", "field"),
    [
        ("/v1/invites", {**INVITE, "email": "not-an-address"}, "email"),
        ("/v1/invites", {**INVITE, "tenant_name": ""}, "tenant_name"),
        ("/v1/invites", {**INVITE, "inviter_name": "Bob\r\nBcc: x@evil.test"}, "inviter_name"),
        ("/v1/invites", {**INVITE, "surprise": 1}, "surprise"),
        ("/v1/emails", {**EMAIL, "subject": "Hi\nBcc: x@evil.test"}, "subject"),
        ("/v1/emails", {**EMAIL, "to": [f"u{n}@example.com" for n in range(51)]}, "to"),
        ("/v1/emails", {**EMAIL, "to": []}, "to"),
        ("/v1/emails", {"to": "ann@example.com", "subject": "No body"}, None),
        ("/v1/emails", {**EMAIL, "from": "no address here"}, "from"),
        ("/v1/emails", {**EMAIL, "tags": [{"name": "bad tag", "value": "x"}]}, "tags"),
        # Unicode line breaks and other control characters (trailing ones too: `strip`
        # would remove U+0085 and U+2028 before a later check saw them).
        ("/v1/emails", {**EMAIL, "subject": "Hi\u2028Bcc: x@evil.test"}, "subject"),
        ("/v1/emails", {**EMAIL, "subject": "Hi\u2029"}, "subject"),
        ("/v1/emails", {**EMAIL, "subject": "Hi\x85"}, "subject"),
        ("/v1/emails", {**EMAIL, "subject": "Hi\x1b[31m"}, "subject"),
        ("/v1/emails", {**EMAIL, "from": "Ann\u2028 <ann@example.com>"}, "from"),
        ("/v1/invites", {**INVITE, "inviter_name": "Bob\u2028"}, "inviter_name"),
        ("/v1/invites", {**INVITE, "tenant_name": "Acme\x85Inc"}, "tenant_name"),
        ("/v1/invites", {**INVITE, "role": "admin\x0b"}, "role"),
    ],
)
async def test_bad_input_is_422_with_field_errors_and_starts_nothing(
    api: httpx.AsyncClient,
    starts: list[str],
    path: str,
    payload: dict[str, Any],
    field: str | None,
) -> None:
    response = await api.post(path, json=payload)
    assert response.status_code == 422, response.text
    errors = response.json()["detail"]
    assert errors and all(e["msg"] for e in errors)
    if field is not None:
        assert any(field in map(str, e["loc"]) for e in errors), errors
    assert starts == []


async def test_malformed_idempotency_key_is_400_and_starts_nothing(
    api: httpx.AsyncClient, starts: list[str]
) -> None:
    response = await api.post("/v1/invites", json=INVITE, headers={"Idempotency-Key": "x" * 300})
    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()["detail"]
    assert starts == []


@pytest.mark.parametrize("email_id", ["inv_0123456789abcdef0123456789abcdef", "em_abc", "nope"])
async def test_unknown_email_is_404(api: httpx.AsyncClient, email_id: str) -> None:
    response = await api.get(f"/v1/emails/{email_id}")
    assert response.status_code == 404
    assert response.json() == {"detail": "no email with this id"}


async def test_health_and_readiness_with_temporal_up(api: httpx.AsyncClient) -> None:
    assert (await api.get("/healthz")).json() == {"status": "ok"}
    ready = await api.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"


@pytest.fixture
async def api_without_temporal(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The API wired to a Temporal address where nothing listens."""
    async with asgi_client(await app_without_temporal(settings)) as http:
        yield http


async def test_temporal_unreachable_is_503_never_202(
    api_without_temporal: httpx.AsyncClient,
) -> None:
    for path, payload in (("/v1/invites", INVITE), ("/v1/emails", EMAIL)):
        response = await api_without_temporal.post(path, json=payload)
        assert response.status_code == 503
        assert "not accepted" in response.json()["detail"]
        assert "Idempotency-Key" in response.json()["detail"]
        assert response.headers["Retry-After"] == "1"
    # A read changed nothing: its error has no key to speak of.
    for read in ("/v1/emails/inv_0123456789abcdef", "/v1/emails"):
        status = await api_without_temporal.get(read)
        assert status.status_code == 503
        assert "Idempotency-Key" not in status.text and "not accepted" not in status.text
    cancel = await api_without_temporal.delete("/v1/emails/inv_0123456789abcdef")
    assert cancel.status_code == 503 and "Idempotency-Key" not in cancel.text
    ready = await api_without_temporal.get("/readyz")
    assert ready.status_code == 503


async def test_resend_api_key_never_reaches_workflow_history(
    api: httpx.AsyncClient, worker: None, client: Client, fake_resend: FakeResendServer
) -> None:
    from testkit.fake_resend import Fault

    fake_resend.fake.enqueue_faults([Fault(status=500)])
    body = (await api.post("/v1/invites", json=INVITE)).json()
    await wait_for_status(api, body["invite_id"], "sent")
    history = await client.get_workflow_handle(body["workflow_id"]).fetch_history()
    raw = json.dumps([MessageToJson(e) for e in history.events])
    assert FAKE_KEY not in raw
    assert "Bearer" not in raw


async def test_without_resend_key_email_lands_in_readable_outbox(
    client: Client, settings: Settings
) -> None:
    from worker import build_transport, build_workers

    dev = settings.model_copy(update={"resend_api_key": None, "dev_pages": True})
    app = create_app(dev, temporal_client=client)
    workflows, sends = build_workers(client, dev, build_transport(dev, None))
    async with (
        workflows,
        sends,
        asgi_client(app, base_url="http://localhost:8000") as api,
    ):
        body = (await api.post("/v1/invites", json=INVITE)).json()
        status = await wait_for_status(api, body["invite_id"], "sent")
        assert status["transport"] == "outbox"
        # Nothing reports on an outbox send: its workflow ends when the email is written
        # (an invite's lives on until accepted, revoked or expired).
        email = {"to": "ann@example.com", "subject": "Hi", "text": "hello"}
        sent = (await api.post("/v1/emails", json=email)).json()
        handle = client.get_workflow_handle(sent["workflow_id"])
        result = await asyncio.wait_for(handle.result(), timeout=10)
        assert result["status"] == "sent" and result["transport"] == "outbox"
        listing = await api.get("/dev/outbox")
        assert listing.status_code == 200 and "not sent" in listing.text
        [html] = list(dev.outbox_dir.glob("*.html"))
        page = await api.get(f"/dev/outbox/{html.name}")
        assert "Accept the invitation" in page.text
        # The email's HTML runs sandboxed: no script, no origin (so no cookie, no API call).
        assert page.headers["Content-Security-Policy"] == "sandbox"
        assert listing.headers["Content-Security-Policy"] == "sandbox"
        assert (await api.get("/dev/outbox/..%2Fsecrets.html")).status_code == 404
        # Only for requests addressed to a loopback name (no DNS rebinding from a web page).
        for host in ("127.0.0.1:8000", "[::1]:8000", "LOCALHOST"):
            assert (await api.get("/dev/outbox", headers={"Host": host})).status_code == 200
        for host in ("evil.example", "localhost.evil.example", "127.0.0.1.nip.io:8000"):
            refused = await api.get("/dev/outbox", headers={"Host": host})
            assert refused.status_code == 404, host


async def test_outbox_routes_exist_only_with_dev_pages(api: httpx.AsyncClient) -> None:
    # The test settings have no DEV_PAGES (and a Resend key): no outbox, whoever asks.
    for path in ("/dev/outbox", "/dev/outbox/x.html"):
        response = await api.get(path, headers={"Host": "localhost"})
        assert response.status_code == 404


@pytest.mark.parametrize(
    "update",
    [
        {"resend_api_key": None},  # outbox mode, as a deployment that forgot its key
        {"resend_api_key": None, "providers": "smtp"},  # SMTP only: no Resend key at all
    ],
    ids=["no-resend-key", "smtp-only"],
)
async def test_no_missing_key_opens_the_dev_pages(
    client: Client, settings: Settings, update: dict[str, object]
) -> None:
    """Without DEV_PAGES there is no outbox and no accept page, whatever `Host` says: the
    accept page accepts any tenant's invite, and `Host` is the client's to write."""
    deployed = settings.model_copy(update=update)
    async with asgi_client(create_app(deployed, temporal_client=client)) as anyone:
        for method, path in [
            ("GET", "/dev/outbox"),
            ("GET", "/dev/outbox/x.html"),
            ("GET", "/dev/outbox/invites/accept?invite=inv_x&token=t"),
            ("POST", "/dev/outbox/invites/accept?invite=inv_x"),
        ]:
            headers = {"Host": "localhost", "Authorization": ""}
            response = await anyone.request(method, path, headers=headers)
            assert response.status_code == 404, (path, response.status_code)


async def test_forged_page_token_is_a_400_not_an_outage(api: httpx.AsyncClient) -> None:
    # Well-formed for our own check (its checksum matches), garbage for Temporal.
    forged = listing.encode_token(b"\x00forged-by-a-client" * 3)
    response = await api.get(f"/v1/emails?page_token={forged}")
    assert response.status_code == 400, response.text
    assert response.json() == {"detail": "invalid page_token"}
    assert (await api.get("/v1/emails?page_token=garbage")).status_code == 400
