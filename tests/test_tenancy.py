"""Tenants: two of them (acme, globex) and an operator, against the real dev server.

A tenant's key sees, lists and cancels its own sends only (another tenant's is a 404, the
same answer as no send at all), sends from its own domains only, and keeps its
idempotency keys across a key rotation; the guard holds however the app is mounted.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr, ValidationError
from starlette.applications import Starlette
from starlette.routing import Mount
from temporalio.client import Client

from api.main import create_app
from config import Settings
from infra.codec import new_codec_key
from testkit.fake_resend import FakeResendServer
from testkit.keys import ACME_KEY, ACME_KEY_PREVIOUS, API_KEY, CODEC_KEYS, GLOBEX_KEY
from testkit.polling import eventually
from tests.conftest import Tenants
from tests.helpers import INVITE, asgi_client, wait_for_status
from workflows.search_attributes import TENANT_ID

EMAIL = {"to": "ann@example.com", "subject": "Your report", "text": "Hello"}
ACME_EMAIL = {**EMAIL, "from": "Acme <hello@acme.example>"}
NOT_FOUND = {"detail": "no email with this id"}


def later() -> str:
    return (datetime.now(UTC) + timedelta(hours=1)).isoformat()


class Callers:
    """One HTTP client per key, all on the same app."""

    def __init__(self, app: FastAPI, root_path: str = "") -> None:
        self._transport = httpx.ASGITransport(app=app, root_path=root_path)
        self.acme = self._client(ACME_KEY)
        self.acme_previous = self._client(ACME_KEY_PREVIOUS)
        self.globex = self._client(GLOBEX_KEY)
        self.operator = self._client(API_KEY)
        self.anonymous = self._client(None)

    def _client(self, key: str | None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.AsyncClient(
            transport=self._transport, base_url="http://api.test", headers=headers
        )

    async def aclose(self) -> None:
        for http in (self.acme, self.acme_previous, self.globex, self.operator, self.anonymous):
            await http.aclose()


@pytest.fixture
async def callers(app: FastAPI) -> AsyncIterator[Callers]:
    callers = Callers(app)
    yield callers
    await callers.aclose()


async def listed_ids(http: httpx.AsyncClient, query: str = "") -> set[str]:
    response = await http.get(f"/v1/emails?limit=100{query}")
    assert response.status_code == 200, response.text
    return {item["id"] for item in response.json()["items"]}


async def test_another_tenants_send_is_not_found_and_nothing_changes(
    callers: Callers, tenants: Tenants, worker: None, fake_resend: FakeResendServer
) -> None:
    created = await callers.acme.post("/v1/emails", json={**ACME_EMAIL, "send_at": later()})
    assert created.status_code == 202, created.text
    email_id = created.json()["id"]
    await wait_for_status(callers.acme, email_id, "scheduled")

    # Read, timeline and cancel by the other tenant: exactly what an unknown id answers.
    unknown = "em_" + "0" * 32
    for path in (f"/v1/emails/{email_id}", f"/v1/emails/{email_id}/events"):
        theirs = await callers.globex.get(path)
        nobody = await callers.globex.get(path.replace(email_id, unknown))
        assert theirs.status_code == nobody.status_code == 404
        assert theirs.json() == nobody.json() == NOT_FOUND
    cancelled = await callers.globex.delete(f"/v1/emails/{email_id}")
    assert cancelled.status_code == 404 and cancelled.json() == NOT_FOUND

    # Listing: the owner (either of its keys) and an operator see it; the other tenant never.
    await eventually(
        lambda: _contains(callers.acme, email_id), what="the send in acme's list", timeout=15
    )
    assert email_id in await listed_ids(callers.acme_previous)
    assert email_id in await listed_ids(callers.operator, f"&tenant_id={tenants.acme}")
    assert email_id not in await listed_ids(callers.globex)
    assert email_id not in await listed_ids(callers.globex, "&status=scheduled")
    naming_acme = await callers.globex.get(f"/v1/emails?tenant_id={tenants.acme}")
    assert naming_acme.status_code == 403
    page = (await callers.acme.get("/v1/emails?limit=100")).json()
    assert {item["tenant_id"] for item in page["items"]} == {tenants.acme}

    # Nothing changed: still scheduled, nothing sent, and its owner can still cancel it.
    status = (await callers.acme.get(f"/v1/emails/{email_id}")).json()
    assert status["status"] == "scheduled" and status["tenant_id"] == tenants.acme
    assert fake_resend.fake.delivered_count == 0
    assert (await callers.acme_previous.delete(f"/v1/emails/{email_id}")).status_code == 200


async def _contains(http: httpx.AsyncClient, email_id: str) -> bool:
    return email_id in await listed_ids(http)


async def test_tenant_is_the_keys_recorded_at_start_and_a_foreign_one_is_403(
    callers: Callers, tenants: Tenants, client: Client, starts: list[str]
) -> None:
    refused = await callers.acme.post(
        "/v1/emails", json={**ACME_EMAIL, "tenant_id": tenants.globex}
    )
    assert refused.status_code == 403
    assert starts == []

    own = await callers.acme.post("/v1/emails", json=ACME_EMAIL)
    named = await callers.acme.post("/v1/emails", json={**ACME_EMAIL, "tenant_id": tenants.acme})
    # An operator may name any tenant (configured or not), or none.
    for_globex = await callers.operator.post(
        "/v1/emails", json={**EMAIL, "tenant_id": tenants.globex}
    )
    for_anyone = await callers.operator.post("/v1/emails", json={**EMAIL, "tenant_id": "other"})
    untenanted = await callers.operator.post("/v1/emails", json=EMAIL)
    expected = {
        own: tenants.acme,
        named: tenants.acme,
        for_globex: tenants.globex,
        for_anyone: "other",
        untenanted: None,
    }
    for response, tenant_id in expected.items():
        assert response.status_code == 202, response.text
        handle = client.get_workflow_handle(response.json()["workflow_id"])
        description = await handle.describe()
        assert description.typed_search_attributes.get(TENANT_ID) == tenant_id
        history = await handle.fetch_history()
        started = history.events[0].workflow_execution_started_event_attributes
        [workflow_input] = await client.data_converter.decode(started.input.payloads)
        assert workflow_input["tenant_id"] == tenant_id
    # The untenanted send is the operator's only: no tenant sees it.
    assert (await callers.acme.get(f"/v1/emails/{untenanted.json()['id']}")).status_code == 404


@pytest.mark.parametrize(
    ("key", "sender"),
    [
        (ACME_KEY, "security@some-bank.example"),
        (ACME_KEY, "Acme Support <help@acme.example.attacker.net>"),
        (ACME_KEY, "ceo@evil.acme.example"),
        (ACME_KEY, "sales@globex.example"),
        (GLOBEX_KEY, "hello@acme.example"),
        (API_KEY, "security@some-bank.example"),
    ],
)
async def test_spoofed_sender_is_422_naming_the_allowed_domains(
    callers: Callers, starts: list[str], key: str, sender: str
) -> None:
    http = {ACME_KEY: callers.acme, GLOBEX_KEY: callers.globex, API_KEY: callers.operator}[key]
    response = await http.post(
        "/v1/emails", json={**EMAIL, "from": sender, "reply_to": "attacker@attacker.net"}
    )
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "from"]
    allowed = {
        ACME_KEY: "acme.example, mail.acme.example",
        GLOBEX_KEY: "globex.example",
        API_KEY: "resend.dev",
    }[key]
    assert allowed in error["msg"]
    assert starts == []


async def test_allowed_senders_and_a_tenants_default_sender(
    callers: Callers, settings: Settings, worker: None, fake_resend: FakeResendServer
) -> None:
    # Exact domains, any case; reply_to is free.
    for sender in ("news@MAIL.acme.example", "Acme <billing@Acme.Example>"):
        body = {**EMAIL, "from": sender, "reply_to": "someone@elsewhere.example"}
        assert (await callers.acme.post("/v1/emails", json=body)).status_code == 202
    # Without `from`, and for invites: the tenant's own email_from.
    invite = (await callers.acme.post("/v1/invites", json=INVITE)).json()
    await wait_for_status(callers.acme, invite["invite_id"], "sent")
    sent_from = {d.payload["from"] for d in fake_resend.fake.deliveries}
    assert "Acme <hello@acme.example>" in sent_from
    # globex has no email_from, and EMAIL_FROM is not at its domains: refused, not spoofed.
    refused = await callers.globex.post("/v1/invites", json=INVITE)
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["loc"] == ["body"]
    assert "globex.example" in refused.json()["detail"][0]["msg"]
    assert settings.email_from not in refused.text


async def test_idempotency_survives_a_codec_key_rotation_and_its_fingerprint_is_keyed(
    settings: Settings, client: Client
) -> None:
    rotated = settings.model_copy(
        update={"payload_codec_keys": SecretStr(f"{new_codec_key('test-3')},{CODEC_KEYS}")}
    )
    key = {"Idempotency-Key": "rotation-1"}

    async def post(app: FastAPI, body: dict[str, Any]) -> httpx.Response:
        async with asgi_client(app, ACME_KEY) as http:
            return await http.post("/v1/emails", json=body, headers=key)

    first = await post(create_app(settings, temporal_client=client), ACME_EMAIL)
    after = create_app(rotated, temporal_client=client)
    repeat = await post(after, ACME_EMAIL)
    assert first.status_code == repeat.status_code == 202
    assert repeat.headers["Idempotent-Replayed"] == "true"
    assert repeat.json()["id"] == first.json()["id"]
    assert (await post(after, {**ACME_EMAIL, "subject": "Another"})).status_code == 409

    description = await client.get_workflow_handle(first.json()["workflow_id"]).describe()
    recorded = await description.memo_value("request_sha256")
    # Keyed by the first codec key of the time (named by its id), not a bare hash of the body.
    assert recorded.startswith("hmac-sha256:test-2:")
    assert "ann@example.com" not in recorded


async def test_every_route_but_the_open_ones_needs_a_caller(app: FastAPI) -> None:
    async with asgi_client(app, key=None) as anonymous:
        v1 = [
            (method.upper(), path)
            for path, operations in app.openapi()["paths"].items()
            if path.startswith("/v1/") and not path.startswith("/v1/webhooks/")
            for method in operations
        ]
        assert len(v1) >= 5
        for method, path in [*v1, ("GET", "/metrics"), ("GET", "/v2/new"), ("GET", "/")]:
            response = await anonymous.request(method, path.replace("{email_id}", "em_x"))
            assert response.status_code == 401, (method, path, response.status_code)
        assert (await anonymous.get("/healthz")).status_code == 200


async def test_metrics_need_an_operator_key(callers: Callers) -> None:
    assert (await callers.anonymous.get("/metrics")).status_code == 401
    assert (await callers.acme.get("/metrics")).status_code == 403
    operator = await callers.operator.get("/metrics")
    assert operator.status_code == 200 and "durable_mail_http_requests_total" in operator.text


@pytest.mark.parametrize("mount", ["root_path", "mounted"])
async def test_guard_holds_under_a_root_path(
    app: FastAPI, callers: Callers, worker: None, mount: str
) -> None:
    created = await callers.acme.post("/v1/emails", json={**ACME_EMAIL, "send_at": later()})
    email_id = created.json()["id"]
    # The same app behind a prefix: as `uvicorn --root-path /mail` or mounted in another app.
    outer: Any = app if mount == "root_path" else Starlette(routes=[Mount("/mail", app=app)])
    prefixed = Callers(outer, root_path="/mail" if mount == "root_path" else "")
    try:
        for path in (f"/mail/v1/emails/{email_id}", "/mail/v1/emails", "/mail/metrics"):
            assert (await prefixed.anonymous.get(path)).status_code == 401, path
        codec = await prefixed.anonymous.post("/mail/codec/decode", json={"payloads": []})
        assert codec.status_code == 401
        assert (await prefixed.globex.get(f"/mail/v1/emails/{email_id}")).status_code == 404
        assert email_id not in await listed_ids_at(prefixed.globex, "/mail/v1/emails")
        assert (await prefixed.acme.get(f"/mail/v1/emails/{email_id}")).status_code == 200
        assert (await prefixed.anonymous.get("/mail/healthz")).status_code == 200
        if mount == "root_path":
            # Unprefixed paths route too (Starlette keeps them): the guard sees them the same.
            assert (await prefixed.anonymous.get(f"/v1/emails/{email_id}")).status_code == 401
            assert (await prefixed.globex.get(f"/v1/emails/{email_id}")).status_code == 404
    finally:
        await prefixed.aclose()


async def listed_ids_at(http: httpx.AsyncClient, path: str) -> set[str]:
    response = await http.get(path)
    assert response.status_code == 200, response.text
    return {item["id"] for item in response.json()["items"]}


def test_tenants_come_from_json_or_a_toml_file_and_bad_ones_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenants = {"acme": {"api_keys": ["k-acme"], "sender_domains": ["Acme.example"]}}
    monkeypatch.setenv("TENANTS", json.dumps(tenants))
    from_env = Settings(_env_file=None)
    assert from_env.tenants["acme"].sender_domains == ["acme.example"]
    assert "k-acme" not in repr(from_env)
    monkeypatch.delenv("TENANTS")

    digest = "sha256:" + "ab" * 32
    toml = tmp_path / "tenants.toml"
    toml.write_text(
        '[acme]\napi_keys = ["k-acme", "' + digest + '"]\nsender_domains = ["acme.example"]\n'
        'email_from = "Acme <hi@acme.example>"\n'
    )
    from_file = Settings(_env_file=None, tenants_file=toml)
    assert from_file.tenants["acme"].email_from == "Acme <hi@acme.example>"

    secret = "k-very-secret-key"
    bad = {
        "unknown field": {"acme": {"api_keys": [secret], "sender_domains": ["a.example"], "x": 1}},
        "bad tenant id": {'acme" OR 1=1': {"api_keys": [secret], "sender_domains": ["a.example"]}},
        "no key": {"acme": {"api_keys": [], "sender_domains": ["a.example"]}},
        "bad digest": {"acme": {"api_keys": ["sha256:abc"], "sender_domains": ["a.example"]}},
        "foreign email_from": {
            "acme": {"api_keys": [secret], "sender_domains": ["a.example"], "email_from": "x@b.c"}
        },
        "shared key": {
            "acme": {"api_keys": [secret], "sender_domains": ["a.example"]},
            "globex": {"api_keys": [secret], "sender_domains": ["b.example"]},
        },
    }
    for name, value in bad.items():
        monkeypatch.setenv("TENANTS", json.dumps(value))
        with pytest.raises(ValidationError) as refused:
            Settings(_env_file=None)
        assert secret not in str(refused.value), name
    monkeypatch.setenv("TENANTS", "{not json " + secret)
    with pytest.raises(ValidationError) as unparsable:
        Settings(_env_file=None)
    assert secret not in str(unparsable.value)
    # A key may not be both an operator's and a tenant's.
    monkeypatch.setenv("TENANTS", json.dumps(tenants))
    with pytest.raises(ValidationError, match="one holder"):
        Settings(_env_file=None, api_keys=SecretStr("k-acme"))
