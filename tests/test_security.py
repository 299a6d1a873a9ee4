"""The API's gate: API keys, per-key rate limit, body size, and refusals of bad input.

Every refusal must start nothing: a spy on `start_workflow` proves it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.types import Message
from temporalio.client import Client

from api.fields import MAX_CONTENT_BYTES, MAX_RECIPIENTS
from api.main import create_app
from config import Settings
from testkit.keys import ACME_KEY, ACME_KEY_PREVIOUS, API_KEY, API_KEY_PREVIOUS, GLOBEX_KEY
from testkit.polling import eventually
from tests.helpers import INVITE, ClientProxy, asgi_client

EMAIL = {"to": "ann@example.com", "subject": "Welcome", "text": "Hello Ann"}


class SpyClient(ClientProxy):
    """The real Temporal client, recording every `start_workflow` call."""

    def __init__(self, client: Client) -> None:
        super().__init__(client)
        self.started: list[str] = []

    async def start_workflow(self, *args: Any, **kwargs: Any) -> Any:
        self.started.append(kwargs["id"])
        return await self._client.start_workflow(*args, **kwargs)


@pytest.fixture
def spy(app: FastAPI, client: Client) -> SpyClient:
    return SpyClient(client).serve(app)


async def refused_and_nothing_started(
    api: httpx.AsyncClient, spy: SpyClient, path: str, body: dict[str, Any]
) -> None:
    """POST `body` to `path`: a 422, and no workflow started."""
    response = await api.post(path, json=body)
    assert response.status_code == 422, response.text
    assert spy.started == []


@pytest.fixture
async def anonymous(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The same app, without an API key."""
    async with asgi_client(app, key=None) as http:
        yield http


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_v1_routes_without_api_key_get_401_with_a_bearer_challenge(
    anonymous: httpx.AsyncClient, spy: SpyClient
) -> None:
    for response in (
        await anonymous.post("/v1/invites", json=INVITE),
        await anonymous.post("/v1/emails", json=EMAIL),
        await anonymous.get("/v1/emails/inv_abc"),
    ):
        assert response.status_code == 401, response.text
        assert response.headers["WWW-Authenticate"].startswith("Bearer ")
        assert "missing API key" in response.json()["detail"]
    assert spy.started == []


async def test_wrong_key_or_scheme_gets_401_invalid_token(
    anonymous: httpx.AsyncClient, spy: SpyClient
) -> None:
    for headers in (
        bearer("not-a-key"),
        bearer(API_KEY + "x"),
        {"Authorization": f"Basic {API_KEY}"},
        {"Authorization": "Bearer "},
    ):
        response = await anonymous.post("/v1/invites", json=INVITE, headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["WWW-Authenticate"].startswith("Bearer ")
    response = await anonymous.post("/v1/invites", json=INVITE, headers=bearer("nope"))
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    assert spy.started == []


async def test_unauthenticated_request_is_refused_before_its_body_is_parsed(
    anonymous: httpx.AsyncClient, settings: Settings
) -> None:
    invalid = await anonymous.post(
        "/v1/invites", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    huge = await anonymous.post("/v1/emails", content=b"x" * (settings.max_request_bytes + 1))
    assert invalid.status_code == huge.status_code == 401


async def test_every_configured_key_works_so_keys_can_rotate(
    anonymous: httpx.AsyncClient, spy: SpyClient
) -> None:
    current = await anonymous.post("/v1/invites", json=INVITE, headers=bearer(API_KEY))
    previous = await anonymous.post("/v1/invites", json=INVITE, headers=bearer(API_KEY_PREVIOUS))
    assert current.status_code == previous.status_code == 202
    assert len(spy.started) == 2


async def test_health_probes_and_webhooks_need_no_api_key(anonymous: httpx.AsyncClient) -> None:
    assert (await anonymous.get("/healthz")).status_code == 200
    # Webhooks authenticate by their Svix signature, not by our keys: an unsigned one is
    # refused for its missing signature, without our Bearer challenge.
    webhook = await anonymous.post("/v1/webhooks/resend", json={})
    assert "www-authenticate" not in webhook.headers
    assert "signature" in webhook.json()["detail"]


async def test_idempotency_keys_are_scoped_per_tenant_so_a_rotation_keeps_them(
    anonymous: httpx.AsyncClient, spy: SpyClient
) -> None:
    same_key = {"Idempotency-Key": "shared-key-1"}

    async def send(key: str, body: dict[str, Any]) -> str:
        response = await anonymous.post(
            "/v1/emails", json=body, headers={**bearer(key), **same_key}
        )
        assert response.status_code == 202, response.text
        email_id: str = response.json()["id"]
        return email_id

    # One tenant, its old and its new key: a retry spanning the rotation is the same send.
    first = await send(ACME_KEY, {**EMAIL, "from": "hello@acme.example"})
    assert await send(ACME_KEY_PREVIOUS, {**EMAIL, "from": "hello@acme.example"}) == first
    # Another tenant with the same Idempotency-Key has its own send, whatever its body.
    other = await send(GLOBEX_KEY, {**EMAIL, "from": "news@globex.example"})
    assert other != first
    # Operator keys share one scope too (their own, apart from every tenant's).
    operator = await send(API_KEY, EMAIL)
    assert await send(API_KEY_PREVIOUS, EMAIL) == operator
    assert operator not in {first, other}
    # Three workflows (a repeat's start attempt is refused by Temporal: same id).
    assert len(set(spy.started)) == 3
    # The send id derives from a hash of the tenant and the key, never from an API key.
    assert ACME_KEY not in first


async def test_rate_limit_per_key_answers_429_with_retry_after(
    anonymous: httpx.AsyncClient, settings: Settings
) -> None:
    settings.api_rate_limit_per_second = 0.5
    settings.api_rate_limit_burst = 2
    statuses = [
        (await anonymous.get("/v1/emails/unknown", headers=bearer(API_KEY))).status_code
        for _ in range(3)
    ]
    assert statuses == [404, 404, 429]
    limited = await anonymous.get("/v1/emails/unknown", headers=bearer(API_KEY))
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) >= 1
    assert "rate limit" in limited.json()["detail"]
    # Another key has its own bucket.
    other = await anonymous.get("/v1/emails/unknown", headers=bearer(API_KEY_PREVIOUS))
    assert other.status_code == 404


async def test_body_over_the_size_limit_gets_413_and_starts_nothing(
    api: httpx.AsyncClient, settings: Settings, spy: SpyClient
) -> None:
    big = {**EMAIL, "text": "x" * settings.max_request_bytes}
    declared = await api.post("/v1/emails", json=big)
    assert declared.status_code == 413
    assert str(settings.max_request_bytes) in declared.json()["detail"]

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(settings.max_request_bytes // 65536 + 2):
            yield b" " * 65536

    streamed = await api.post(
        "/v1/emails", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert streamed.status_code == 413
    assert spy.started == []


@pytest.mark.parametrize(
    "override",
    [
        {"subject": "Hi\r\nBcc: eve@example.com"},
        {"subject": "Hi\n"},
        {"from": "Bob <bob@example.com>\r\nBcc: eve@example.com"},
        {"reply_to": "bob@example.com\nBcc: eve@example.com"},
        {"reply_to": ["bob@example.com", "eve@example.com\r"]},
        {"tags": [{"name": "campaign", "value": "a\r\nb"}]},
        {"tags": [{"name": "campaign\n", "value": "a"}]},
    ],
)
async def test_line_breaks_in_header_fields_get_422_and_start_nothing(
    api: httpx.AsyncClient, spy: SpyClient, override: dict[str, Any]
) -> None:
    await refused_and_nothing_started(api, spy, "/v1/emails", {**EMAIL, **override})


@pytest.mark.parametrize(
    "body",
    [
        {**EMAIL, "bcc": "eve@example.com"},
        {**EMAIL, "to": [f"user{n}@example.com" for n in range(MAX_RECIPIENTS + 1)]},
        {**EMAIL, "text": "é" * (MAX_CONTENT_BYTES // 2 + 1)},
        {**EMAIL, "html": "<p>" + "x" * MAX_CONTENT_BYTES + "</p>"},
        {**EMAIL, "to": "ann@@example.com"},
        {**EMAIL, "to": '"ann smith"@example.com'},
        {**EMAIL, "to": "ann@example"},
        {**EMAIL, "from": "bob@example.com, eve@example.com"},
    ],
    ids=[
        "unknown-field",
        "too-many-recipients",
        "text-too-large",
        "html-too-large",
        "double-at",
        "quoted-local-part",
        "no-tld",
        "two-senders",
    ],
)
async def test_invalid_emails_get_422_and_start_nothing(
    api: httpx.AsyncClient, spy: SpyClient, body: dict[str, Any]
) -> None:
    await refused_and_nothing_started(api, spy, "/v1/emails", body)


@pytest.mark.parametrize(
    "override",
    [
        {"email": "ann@example.com\r\nBcc: eve@example.com"},
        {"tenant_name": "Acme\nInc"},
        {"inviter_name": "Bob\r"},
        {"admin": True},
    ],
)
async def test_invalid_invites_get_422_and_start_nothing(
    api: httpx.AsyncClient, spy: SpyClient, override: dict[str, Any]
) -> None:
    await refused_and_nothing_started(api, spy, "/v1/invites", {**INVITE, **override})


async def test_largest_accepted_email_is_accepted(api: httpx.AsyncClient, spy: SpyClient) -> None:
    body = {**EMAIL, "to": [f"u{n}@example.com" for n in range(MAX_RECIPIENTS)]}
    body["html"] = "x" * (MAX_CONTENT_BYTES - len(body["text"]))
    response = await api.post("/v1/emails", json=body)
    assert response.status_code == 202, response.text
    assert len(spy.started) == 1


async def startup_answer(app: FastAPI) -> Message:
    """What the app answers a server's ASGI `lifespan.startup` (as uvicorn sends it)."""
    answers: list[Message] = []
    asked = False

    async def receive() -> Message:
        nonlocal asked
        if not asked:
            asked = True
            return {"type": "lifespan.startup"}
        await asyncio.Event().wait()  # the server would later ask for shutdown
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        answers.append(message)

    task = asyncio.create_task(app({"type": "lifespan", "state": {}}, receive, send))
    await eventually(lambda: bool(answers), timeout=10, what="a lifespan answer")
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return answers[0]


async def test_api_refuses_to_start_without_any_api_key(settings: Settings, client: Client) -> None:
    keyless = settings.model_copy(update={"api_keys": None, "tenants": {}})
    answer = await startup_answer(create_app(keyless))
    assert answer["type"] == "lifespan.startup.failed"
    assert "API_KEYS" in answer["message"] and "\n" not in answer["message"]
    # Tenant keys alone are enough.
    tenants_only = settings.model_copy(update={"api_keys": None})
    answer = await startup_answer(create_app(tenants_only, temporal_client=client))
    assert answer["type"] == "lifespan.startup.complete"
