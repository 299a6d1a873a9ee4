"""What an attacker with a valid key of one tenant (or none) still tried (issue 22).

Each test is one finding of that red-team run and failed on the code it was found in.
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.routing import Mount
from temporalio.client import Client

from api.deps import get_temporal_client
from api.main import create_app
from config import Settings, TenantConfig
from testkit.keys import ACME_KEY, API_KEY, GLOBEX_KEY
from testkit.procs import free_port
from testkit.stack import api_proc, start_api
from tests.helpers import INVITE, ClientProxy, asgi_client
from tests.test_secure_defaults import stack_env

EMAIL = {"to": "ann@example.com", "subject": "Report", "text": "Hello", "from": "a@acme.example"}


class CountingClient(ClientProxy):
    """The real Temporal client, counting every workflow handle the API asks for."""

    def __init__(self, client: Client) -> None:
        super().__init__(client)
        self.handles: list[str] = []

    def get_workflow_handle(self, workflow_id: str, **kwargs: Any) -> Any:
        self.handles.append(workflow_id)
        return self._client.get_workflow_handle(workflow_id, **kwargs)


@pytest.fixture
def counting(app: FastAPI, client: Client) -> CountingClient:
    return CountingClient(client).serve(app)


@pytest.fixture
async def acme(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(app, ACME_KEY) as http:
        yield http


@pytest.fixture
async def globex(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(app, GLOBEX_KEY) as http:
        yield http


def later() -> str:
    return (datetime.now(UTC) + timedelta(hours=1)).isoformat()


def _id_routes(email_id: str, batch_id: str, invite_id: str) -> list[tuple[str, str, Any]]:
    """Every route that takes an id: (method, path, json body)."""
    return [
        ("GET", f"/v1/emails/{email_id}", None),
        ("GET", f"/v1/emails/{email_id}/events", None),
        ("DELETE", f"/v1/emails/{email_id}", None),
        ("GET", f"/v1/batches/{batch_id}", None),
        ("GET", f"/v1/emails/{batch_id.replace('bat_', 'em_')}_0", None),
        ("GET", f"/v1/invites/{invite_id}", None),
        ("POST", f"/v1/invites/{invite_id}/accept", {}),
        ("DELETE", f"/v1/invites/{invite_id}", None),
        ("GET", f"/emails/{email_id}", None),
        ("PATCH", f"/emails/{email_id}", {"scheduled_at": later()}),
        ("POST", f"/emails/{email_id}/cancel", None),
    ]


async def test_another_tenants_ids_get_the_answer_of_no_id_without_asking_temporal(
    acme: httpx.AsyncClient, globex: httpx.AsyncClient, counting: CountingClient
) -> None:
    # acme's sends: scheduled (they wait without a worker), a batch, an app-link invite.
    email = await acme.post("/v1/emails", json={**EMAIL, "send_at": later()})
    batch = await acme.post("/v1/emails/batch", json={"emails": [EMAIL]})
    invite = await acme.post(
        "/v1/invites",
        json={**INVITE, "accept_url": "https://app.example.test/join?t=1", "send_at": later()},
    )
    for accepted in (email, batch, invite):
        assert accepted.status_code == 202, accepted.text
    theirs = _id_routes(email.json()["id"], batch.json()["id"], invite.json()["invite_id"])
    # Ids of the same shape that name nothing: a fresh key with a made-up tag.
    fresh = secrets.token_hex(24)
    nobodys = _id_routes(f"em_{fresh}", f"bat_{fresh}", f"inv_{fresh}")
    counting.handles.clear()
    for (method, path, body), (_, unknown_path, _) in zip(theirs, nobodys, strict=True):
        foreign = await globex.request(method, path, json=body)
        unknown = await globex.request(method, unknown_path, json=body)
        assert foreign.status_code == unknown.status_code == 404, (path, foreign.text)
        assert foreign.json() == unknown.json(), path
    # Refused before any call to Temporal: the same time, with or without a worker.
    assert counting.handles == []
    # The owner still reads each.
    assert (await acme.get(f"/v1/emails/{email.json()['id']}")).status_code == 200
    assert (await acme.get(f"/v1/invites/{invite.json()['invite_id']}")).status_code == 200
    # (a running batch answers from its query: 503 with no worker, never 404)
    assert (await acme.get(f"/v1/batches/{batch.json()['id']}")).status_code in (200, 503)


async def test_another_tenants_invite_answers_as_fast_as_an_unknown_one(
    acme: httpx.AsyncClient, globex: httpx.AsyncClient
) -> None:
    invite = await acme.post(
        "/v1/invites", json={**INVITE, "accept_url": "https://app.example.test/join?t=1"}
    )
    assert invite.status_code == 202, invite.text
    invite_id = invite.json()["invite_id"]
    unknown_id = f"inv_{secrets.token_hex(24)}"

    async def median_ms(path: str) -> float:
        times = []
        for _ in range(15):
            start = time.perf_counter()
            answer = await globex.post(path, json={})
            times.append((time.perf_counter() - start) * 1000)
            assert answer.status_code == 404
        return sorted(times)[len(times) // 2]

    await median_ms(f"/v1/invites/{unknown_id}/accept")  # warm up
    foreign = await median_ms(f"/v1/invites/{invite_id}/accept")
    unknown = await median_ms(f"/v1/invites/{unknown_id}/accept")
    # Before: ~17 ms against ~5 ms (a describe and an update against none).
    assert foreign < unknown * 2 + 2, (foreign, unknown)


async def test_key_guessing_is_throttled_per_client_and_prefix_but_a_real_key_keeps_working(
    settings: Settings, tmp_path: Path
) -> None:
    port = free_port()
    api = api_proc(stack_env(settings), tmp_path, port)
    url = f"http://127.0.0.1:{port}"

    def from_address(address: str, key: str | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        transport = httpx.AsyncHTTPTransport(local_address=address)
        return httpx.AsyncClient(base_url=url, transport=transport, headers=headers)

    prefix = API_KEY[:8]
    try:
        await start_api(api, url)
        async with from_address("127.0.0.1") as attacker:
            answers = [
                await attacker.get(
                    "/v1/emails", headers={"Authorization": f"Bearer {prefix}{uuid.uuid4().hex}"}
                )
                for _ in range(60)
            ]
            codes = [answer.status_code for answer in answers]
            # Before: 60 × 401, never slowed.
            assert codes[:20] == [401] * 20 and codes[-1] == 429, codes
            assert int(answers[-1].headers["retry-after"]) >= 1
            guesses = [f"/codec/{uuid.uuid4().hex}/decode" for _ in range(5)]
            assert {(await attacker.post(path, json={})).status_code for path in guesses} == {429}
            # This client's own real key waits too (it is the one that failed)...
            assert (await attacker.get("/v1/emails", headers=bearer(API_KEY))).status_code == 429
        # ...guesses at the prefix from many addresses exhaust the prefix's budget...
        for host in range(10, 70):
            async with from_address(f"127.0.0.{host}") as other:
                for _ in range(5):
                    await other.get("/v1/emails", headers=bearer(f"{prefix}{uuid.uuid4().hex}"))
                last = await other.get("/v1/emails", headers=bearer(f"{prefix}{uuid.uuid4().hex}"))
        assert last.status_code == 429
        # ...and the real key, from a client that has not failed, still works at once.
        async with from_address("127.0.0.2", API_KEY) as owner:
            listed = await owner.get("/v1/emails?limit=1")
            assert listed.status_code == 200, listed.text
    finally:
        await api.stop()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


RESEND_EMAIL = {**EMAIL, "to": ["ann@example.com"]}


@pytest.mark.parametrize(
    "name",
    ["From", "Sender", "Reply-To", "Return-Path", "Bcc", "To", "Cc", "DKIM-Signature", "from"],
)
async def test_resend_headers_cannot_name_addresses_or_route_the_message(
    acme: httpx.AsyncClient, counting: CountingClient, name: str
) -> None:
    body = {**RESEND_EMAIL, "headers": {name: "Security <security@paypal.example>"}}
    answer = await acme.post("/emails", json=body)
    # Before: 200, and the header reached the provider verbatim.
    assert answer.status_code == 422, answer.text
    assert answer.json()["name"] == "validation_error"
    assert "`headers`" in answer.json()["message"] and "paypal" not in answer.json()["message"]
    assert counting.handles == []


async def test_resend_headers_documented_by_resend_still_pass(
    acme: httpx.AsyncClient, counting: CountingClient
) -> None:
    headers = {"X-Entity-Ref-ID": "r-1", "List-Unsubscribe": "<https://acme.example/u>"}
    answer = await acme.post(
        "/emails", json={**RESEND_EMAIL, "headers": headers, "scheduled_at": later()}
    )
    assert answer.status_code == 200, answer.text


async def test_resend_reschedule_to_the_past_is_refused(
    acme: httpx.AsyncClient, counting: CountingClient
) -> None:
    scheduled = await acme.post("/emails", json={**RESEND_EMAIL, "scheduled_at": later()})
    assert scheduled.status_code == 200, scheduled.text
    email_id = scheduled.json()["id"]
    past = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    counting.handles.clear()
    answer = await acme.patch(f"/emails/{email_id}", json={"scheduled_at": past})
    # Before: 200, and the email went out at once.
    assert answer.status_code == 422, answer.text
    assert answer.json()["name"] == "validation_error"
    assert "`scheduled_at`" in answer.json()["message"]
    assert counting.handles == []


async def test_resend_503_of_a_read_does_not_speak_of_an_idempotency_key(
    app: FastAPI, acme: httpx.AsyncClient, counting: CountingClient
) -> None:
    scheduled = await acme.post("/emails", json={**RESEND_EMAIL, "scheduled_at": later()})
    email_id = scheduled.json()["id"]

    # Temporal where nothing listens.
    down = await Client.connect(f"127.0.0.1:{free_port()}", lazy=True)
    app.dependency_overrides[get_temporal_client] = lambda: down
    answer = await acme.get(f"/emails/{email_id}")
    assert answer.status_code == 503, answer.text
    assert "Idempotency-Key" not in answer.json()["message"]


TEMPLATED = {"to": "ann@example.com", "from": "a@acme.example", "template": "invite"}
INVITE_VARIABLES = {
    "inviter_name": "Bob",
    "tenant_name": "Acme",
    "reminder": False,
    "role": None,
    "expires_on": "1 May",
}


@pytest.mark.parametrize(
    "variables",
    [
        {"accept_url": "javascript:alert(document.cookie)"},
        {"accept_url": " JavaScript:alert(1)"},
        {"accept_url": "https://evil.example/phish"},
        {"accept_url": "https://app.example.test:8443/join"},
        {"other": "data:text/html;base64,PHNjcmlwdD4="},
        {"nested": {"logo_url": "http://evil.example/x.png"}},
    ],
)
async def test_a_templated_email_takes_only_links_an_invite_could_have(
    acme: httpx.AsyncClient, counting: CountingClient, variables: dict[str, Any]
) -> None:
    body = {**TEMPLATED, "variables": {**INVITE_VARIABLES, **variables}}
    answer = await acme.post("/v1/emails", json=body)
    # Before: 202, and the link was the invite's button.
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"][0]["loc"][1].startswith("variables")
    assert counting.handles == []


async def test_a_templated_email_with_the_tenants_own_link_is_accepted(
    acme: httpx.AsyncClient, counting: CountingClient
) -> None:
    variables = {**INVITE_VARIABLES, "accept_url": "https://app.example.test/join?t=1"}
    body = {**TEMPLATED, "variables": variables, "send_at": later()}
    answer = await acme.post("/v1/emails", json=body)
    assert answer.status_code == 202, answer.text


@pytest.mark.parametrize(
    "accept_url",
    [
        "https://app.example.test:0/join",
        "https://app.example.test:99999/join",
        "https://app.example.test:abc/join",
        "https://app.example.test:/join",
        "https://app.example.test:8443/join",  # a port the tenant's app page is not on
    ],
)
async def test_invite_links_take_only_the_tenants_port(
    acme: httpx.AsyncClient, counting: CountingClient, accept_url: str
) -> None:
    answer = await acme.post("/v1/invites", json={**INVITE, "accept_url": accept_url})
    assert answer.status_code == 422, answer.text
    assert counting.handles == []
    ok = "https://app.example.test:443/join"
    accepted = await acme.post("/v1/invites", json={**INVITE, "accept_url": ok, "send_at": later()})
    assert accepted.status_code == 202, accepted.text


@pytest.mark.parametrize("sender", ["a@acme\u3002example", "a@acme\uff0eexample", "a@ACME.example"])
async def test_a_sender_is_checked_and_forwarded_in_one_canonical_form(
    acme: httpx.AsyncClient, sender: str
) -> None:
    body = {**RESEND_EMAIL, "from": f"Acme <{sender}>", "scheduled_at": later()}
    answer = await acme.post("/emails", json=body)
    assert answer.status_code == 200, answer.text
    recorded = await acme.get(f"/emails/{answer.json()['id']}")
    # Before: forwarded as given (`a@acme。example`), which the check read as acme.example.
    assert recorded.json()["from"] == "Acme <a@acme.example>"


@pytest.mark.parametrize(
    "sender",
    [
        "=?utf-8?q?security=40paypal.example?= <a@acme.example>",
        "=?utf-8?b?c2VjdXJpdHlAcGF5cGFsLmV4YW1wbGU=?= <a@acme.example>",
        "security\uff20paypal.example <a@acme.example>",
        "security\ufe6bpaypal.example <a@acme.example>",
    ],
)
async def test_a_display_name_cannot_pose_as_another_address(
    acme: httpx.AsyncClient, counting: CountingClient, sender: str
) -> None:
    for path, body in (
        ("/emails", {**RESEND_EMAIL, "from": sender}),
        ("/v1/emails", {**EMAIL, "from": sender}),
    ):
        answer = await acme.post(path, json=body)
        assert answer.status_code == 422, (path, answer.text)
    assert counting.handles == []


async def test_the_app_mounted_in_another_works_without_its_own_lifespan(
    settings: Settings,
) -> None:
    # No client given and no lifespan run: Starlette runs only the outer app's.
    outer = Starlette(routes=[Mount("/mail", app=create_app(settings))])
    async with asgi_client(outer, ACME_KEY, base_url="http://host.test") as http:
        accepted = await http.post("/mail/v1/emails", json={**EMAIL, "send_at": later()})
        # Before: 500 (no Temporal client) on every route that needs one.
        assert accepted.status_code == 202, accepted.text
        listed = await http.get("/mail/v1/emails?limit=5")
        assert listed.status_code == 200, listed.text
        resend = await http.get(f"/mail/emails/{accepted.json()['id']}")
        assert resend.status_code == 200, resend.text
        assert (await http.get("/mail/v1/emails", headers=bearer("wrong"))).status_code == 401


async def test_a_mounted_app_without_keys_refuses_every_request_naming_what_is_missing(
    settings: Settings,
) -> None:
    unsafe = settings.model_copy(update={"payload_codec_keys": None})
    outer = Starlette(routes=[Mount("/mail", app=create_app(unsafe))])
    async with asgi_client(outer, ACME_KEY, base_url="http://host.test") as http:
        answer = await http.post("/mail/v1/emails", json=EMAIL)
        assert answer.status_code == 503
        assert "PAYLOAD_CODEC_KEYS" in answer.json()["detail"]


async def test_without_a_worker_another_tenants_invite_answers_at_once_like_none(
    settings: Settings, tmp_path: Path
) -> None:
    # The real API process, and no worker at all (as in the red-team run).
    tenants = {
        "acme": {
            "api_keys": [ACME_KEY],
            "sender_domains": ["acme.example"],
            "email_from": "Acme <a@acme.example>",
        },
        "globex": {"api_keys": [GLOBEX_KEY], "sender_domains": ["globex.example"]},
    }
    env = stack_env(settings, TENANTS=json.dumps(tenants), APP_BASE_URL="https://app.example.test")
    port = free_port()
    api = api_proc(env, tmp_path, port)
    url = f"http://127.0.0.1:{port}"
    try:
        await start_api(api, url)
        async with (
            httpx.AsyncClient(base_url=url, headers=bearer(ACME_KEY), timeout=30) as acme,
            httpx.AsyncClient(base_url=url, headers=bearer(GLOBEX_KEY), timeout=30) as globex,
        ):
            link = "https://app.example.test/join?t=1"
            created = await acme.post("/v1/invites", json={**INVITE, "accept_url": link})
            assert created.status_code == 202, created.text
            theirs, nobodys = created.json()["invite_id"], f"inv_{secrets.token_hex(24)}"
            for invite_id in (theirs, nobodys):
                for method, path in (
                    ("POST", f"/v1/invites/{invite_id}/accept"),
                    ("DELETE", f"/v1/invites/{invite_id}"),
                ):
                    start = time.perf_counter()
                    answer = await globex.request(
                        method, path, json={} if method == "POST" else None
                    )
                    elapsed = time.perf_counter() - start
                    # Before: 503 after 5 s for theirs, 404 at once for none.
                    assert answer.status_code == 404, (invite_id == theirs, path, answer.text)
                    assert answer.json() == {"detail": "no invite with this id"}
                    assert elapsed < 1.0, (invite_id == theirs, path, elapsed)
    finally:
        await api.stop()


def test_configured_senders_are_forwarded_in_the_form_they_are_checked_in() -> None:
    tenant = TenantConfig(
        api_keys=[SecretStr(ACME_KEY)],
        sender_domains=["acme.example"],
        email_from="Acme <hello@ACME\u3002example>",
    )
    assert tenant.email_from == "Acme <hello@acme.example>"
    settings = Settings(_env_file=None, email_from="ops@Mail\uff0eAcme.example")
    assert settings.email_from == "ops@mail.acme.example"
