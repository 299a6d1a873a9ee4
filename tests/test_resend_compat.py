"""The Resend-compatible API, driven by Resend's own Python SDK (`resend`) as an app drives it.

One real stack for the module: the Temporal dev server, a worker, our API under uvicorn on a
free port (`resend.api_url` points at it) and the fake Resend behind the worker, which
counts what really goes out. The SDK is synchronous (requests): calls run in a thread.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import resend
import resend.exceptions
from fastapi import FastAPI
from pydantic import SecretStr
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from api.main import create_app
from api.resend_compat.mapping import LAST_EVENT
from api.resend_compat.routes import TAG
from api.resend_compat.schemas import MAX_ATTACHMENT_BYTES
from config import Settings
from testkit.fake_resend import Delivery, FakeResend, FakeResendServer
from testkit.keys import ACME_KEY, API_KEY, GLOBEX_KEY, WEBHOOK_SECRET
from testkit.polling import eventually
from testkit.procs import free_port
from testkit.settings import stack_settings
from testkit.stack import api_proc, start_api, worker_env
from tests.helpers import app_without_temporal, asgi_client, running_worker
from workflows.search_attributes import EMAIL_KIND, TENANT_ID
from workflows.status import SendStatus

T = TypeVar("T")
SENDER = "Acme <invites@acme.example>"


@dataclass
class Stack:
    url: str
    fake: FakeResend
    settings: Settings
    # Two tenants of this module (ids unique: the dev server is shared), by their keys.
    acme: str
    globex: str


@pytest.fixture(scope="module")
async def stack(
    temporal_env: WorkflowEnvironment, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    client = temporal_env.client
    log_dir = tmp_path_factory.mktemp("resend-compat")
    suffix = uuid.uuid4().hex[:12]
    with FakeResendServer() as fake:
        settings = stack_settings(
            fake.url,
            log_dir / "outbox",
            temporal_address=client.service_client.config.target_host,
            api_keys=SecretStr(API_KEY),
        )
        acme, globex = f"acme-{suffix}", f"globex-{suffix}"
        tenants = {
            acme: {"api_keys": [ACME_KEY], "sender_domains": ["acme.example"]},
            globex: {"api_keys": [GLOBEX_KEY], "sender_domains": ["globex.example"]},
        }
        # Operator keys send from acme.example too (the SENDER of most tests).
        api_env = {
            **worker_env(settings),
            "TENANTS": json.dumps(tenants),
            "SENDER_DOMAINS": "acme.example",
            # The provider's webhooks (tests/webhooks.py signs them): bounces, complaints.
            "RESEND_WEBHOOK_SECRET": WEBHOOK_SECRET,
        }
        async with running_worker(client, settings):
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            api = api_proc(api_env, log_dir, port)
            await start_api(api, url)
            try:
                yield Stack(url, fake.fake, settings, acme, globex)
            finally:
                await api.stop()


@pytest.fixture
def sdk(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    """The Resend SDK pointed at our API: the one change an app makes."""
    monkeypatch.setattr(resend, "api_url", stack.url)
    monkeypatch.setattr(resend, "api_key", API_KEY)
    yield stack


async def call(fn: Callable[..., T], *args: Any) -> T:
    """A blocking SDK call, off the event loop the worker runs on."""
    return await asyncio.to_thread(fn, *args)


def email(**fields: Any) -> dict[str, Any]:
    """A Resend send body; each test's own recipient and subject."""
    tag = uuid.uuid4().hex[:8]
    return {
        "from": SENDER,
        "to": [f"ann-{tag}@example.com"],
        "subject": f"Welcome {tag}",
        "html": "<p>Welcome</p>",
        **fields,
    }


def deliveries_of(fake: FakeResend, email_id: str) -> list[Delivery]:
    """What the provider received for one of our ids (the correlation tag carries it)."""
    tag = {"name": "email_id", "value": email_id}
    return [d for d in fake.deliveries if tag in d.payload.get("tags", [])]


async def wait_last_event(email_id: str, *events: str) -> dict[str, Any]:
    async def reached() -> dict[str, Any] | None:
        found: dict[str, Any] = dict(await call(resend.Emails.get, email_id))
        return found if found["last_event"] in events else None

    result: dict[str, Any] = await eventually(reached, timeout=20, what=f"{email_id} {events}")
    return result


def in_future(**delta: float) -> str:
    return (datetime.now(UTC) + timedelta(**delta)).isoformat().replace("+00:00", "Z")


async def test_sdk_send_is_recorded_then_delivered_once_with_every_field(
    sdk: Stack, client: Client
) -> None:
    pdf = b"%PDF-1.4 tiny"
    params = email(
        to="Ann <ann@example.com>",
        cc=["carl@example.com"],
        bcc="dora@example.com",
        reply_to=["support@acme.example"],
        text="Welcome",
        headers={"X-Entity-Ref-ID": "invite-42"},
        tags=[{"name": "category", "value": "invite"}],
        attachments=[
            {"filename": "terms.pdf", "content": list(pdf)},
            {"filename": "notes.txt", "content": base64.b64encode(b"hi").decode()},
            {"filename": "logo.png", "path": "https://cdn.acme.example/logo.png"},
        ],
    )
    sent = await call(resend.Emails.send, params)
    email_id = sent["id"]
    assert email_id.startswith("em_")

    await wait_last_event(email_id, "sent")
    [delivery] = deliveries_of(sdk.fake, email_id)
    payload = delivery.payload
    assert payload["to"] == ["Ann <ann@example.com>"]
    assert payload["cc"] == ["carl@example.com"] and payload["bcc"] == ["dora@example.com"]
    assert payload["reply_to"] == ["support@acme.example"]
    assert payload["headers"] == {"X-Entity-Ref-ID": "invite-42"}
    assert {"name": "category", "value": "invite"} in payload["tags"]
    assert payload["attachments"] == [
        {"filename": "terms.pdf", "content": base64.b64encode(pdf).decode()},
        {"filename": "notes.txt", "content": base64.b64encode(b"hi").decode()},
        {"filename": "logo.png", "path": "https://cdn.acme.example/logo.png"},
    ]
    assert sdk.fake.duplicates() == []

    # The same send, under the same id, in /v1 and in Temporal's visibility.
    async with httpx.AsyncClient(
        base_url=sdk.url, headers={"Authorization": f"Bearer {API_KEY}"}
    ) as api:
        v1 = (await api.get(f"/v1/emails/{email_id}")).json()
    assert v1["id"] == email_id and v1["kind"] == "email" and v1["status"] == "sent"
    described = await client.get_workflow_handle(v1["workflow_id"]).describe()
    assert described.typed_search_attributes.get(EMAIL_KIND) == "email"


async def test_sdk_idempotency_key_twice_sends_once_and_answers_the_same_id(sdk: Stack) -> None:
    params = email()
    key = f"welcome-user/{uuid.uuid4().hex}"
    first = await call(resend.Emails.send, params, {"idempotency_key": key})
    second = await call(resend.Emails.send, params, {"idempotency_key": key})
    assert second["id"] == first["id"]
    assert second["http_headers"].get("idempotent-replayed") == "true"

    await wait_last_event(first["id"], "sent")
    assert len(deliveries_of(sdk.fake, first["id"])) == 1
    third = await call(resend.Emails.send, params, {"idempotency_key": key})
    assert third["id"] == first["id"]
    assert len(deliveries_of(sdk.fake, first["id"])) == 1


async def test_sdk_concurrent_requests_under_one_key_get_one_id_and_one_email(
    sdk: Stack,
) -> None:
    # Resend answers the later ones 409 concurrent_idempotent_requests while the first is in
    # flight; here the start is atomic, so every one of them gets the recorded answer.
    params, key = email(), f"welcome-user/{uuid.uuid4().hex}"
    answers = await asyncio.gather(
        *(call(resend.Emails.send, params, {"idempotency_key": key}) for _ in range(4))
    )
    [email_id] = {a["id"] for a in answers}
    await wait_last_event(email_id, "sent")
    assert len(deliveries_of(sdk.fake, email_id)) == 1


async def test_sdk_same_key_with_another_body_raises_invalid_idempotent_request(
    sdk: Stack,
) -> None:
    key = f"welcome-user/{uuid.uuid4().hex}"
    first = await call(resend.Emails.send, email(), {"idempotency_key": key})
    with pytest.raises(resend.exceptions.ResendError) as raised:
        await call(resend.Emails.send, email(), {"idempotency_key": key})
    assert raised.value.code == 409
    assert raised.value.error_type == "invalid_idempotent_request"
    await wait_last_event(first["id"], "sent")
    assert len(deliveries_of(sdk.fake, first["id"])) == 1


async def test_sdk_malformed_idempotency_key_raises_invalid_idempotency_key(sdk: Stack) -> None:
    before = sdk.fake.delivered_count
    with pytest.raises(resend.exceptions.ResendError) as raised:
        await call(resend.Emails.send, email(), {"idempotency_key": "k" * 257})
    assert (raised.value.code, raised.value.error_type) == (400, "invalid_idempotency_key")
    assert sdk.fake.delivered_count == before


async def test_sdk_get_answers_resends_email_object(sdk: Stack) -> None:
    params = email(cc="carl@example.com", text="Welcome")
    email_id = (await call(resend.Emails.send, params))["id"]
    got = await wait_last_event(email_id, "sent")
    assert got["object"] == "email" and got["id"] == email_id
    assert got["from"] == SENDER and got["to"] == params["to"] and got["cc"] == [params["cc"]]
    assert got["subject"] == params["subject"]
    assert got["html"] == params["html"] and got["text"] == "Welcome"
    assert got["bcc"] is None and got["scheduled_at"] is None
    assert datetime.fromisoformat(got["created_at"]).tzinfo is not None


async def test_sdk_schedule_then_cancel_sends_nothing(sdk: Stack) -> None:
    at = in_future(hours=1)
    email_id = (await call(resend.Emails.send, email(scheduled_at=at)))["id"]
    got: dict[str, Any] = dict(await call(resend.Emails.get, email_id))
    assert got["last_event"] == "scheduled"
    assert datetime.fromisoformat(got["scheduled_at"]) == datetime.fromisoformat(at)

    canceled = await call(resend.Emails.cancel, email_id)
    assert (canceled["object"], canceled["id"]) == ("email", email_id)
    assert (await call(resend.Emails.get, email_id))["last_event"] == "canceled"
    with pytest.raises(resend.exceptions.ValidationError) as raised:
        await call(resend.Emails.update, {"id": email_id, "scheduled_at": in_future(hours=2)})
    assert "cancelled" in raised.value.message
    assert deliveries_of(sdk.fake, email_id) == []


async def test_sdk_reschedule_sends_once_at_the_new_time(sdk: Stack) -> None:
    email_id = (await call(resend.Emails.send, email(scheduled_at=in_future(hours=1))))["id"]
    new_time = datetime.now(UTC) + timedelta(seconds=2)
    updated = await call(
        resend.Emails.update, {"id": email_id, "scheduled_at": new_time.isoformat()}
    )
    assert (updated["object"], updated["id"]) == ("email", email_id)
    assert (await call(resend.Emails.get, email_id))["last_event"] == "scheduled"

    await wait_last_event(email_id, "sent")
    [delivery] = deliveries_of(sdk.fake, email_id)
    assert delivery.received_at_wall >= new_time.timestamp()
    # Once it went out, the time can no longer change, nor can it be cancelled.
    with pytest.raises(resend.exceptions.ValidationError):
        await call(resend.Emails.update, {"id": email_id, "scheduled_at": in_future(hours=1)})
    with pytest.raises(resend.exceptions.ValidationError):
        await call(resend.Emails.cancel, email_id)


@pytest.mark.parametrize(
    ("fields", "exception", "name", "words"),
    [
        ({"to": ["not-an-address"]}, resend.exceptions.ValidationError, "validation_error", "`to`"),
        ({"subject": None}, resend.exceptions.MissingRequiredFieldsError,
         "missing_required_field", "Missing `subject`"),
        ({"scheduled_at": "whenever suits"}, resend.exceptions.ValidationError,
         "validation_error", "a time in words"),
        ({"scheduled_at": "in 40 days"}, resend.exceptions.ValidationError, "validation_error",
         "at most 30 days"),
        ({"scheduled_at": "yesterday at 9am"}, resend.exceptions.ValidationError,
         "validation_error", "in the future"),
        ({"scheduled_at": "2"}, resend.exceptions.ValidationError, "validation_error",
         "a time in words"),
        ({"template": {"id": "welcome"}}, resend.exceptions.ValidationError, "validation_error",
         "`template` is not supported"),
        ({"html": None}, resend.exceptions.ValidationError, "validation_error", "html"),
        ({"headers": {"X-Evil": "a\r\nBcc: x@evil.example"}}, resend.exceptions.ValidationError,
         "validation_error", "`headers`"),
        ({"attachments": [{"filename": "big.bin", "content": "A" * (MAX_ATTACHMENT_BYTES + 4)}]},
         resend.exceptions.ResendError, "invalid_attachment", f"at most {MAX_ATTACHMENT_BYTES}"),
    ],
)  # fmt: skip
async def test_sdk_invalid_email_raises_the_sdks_exception_and_sends_nothing(
    sdk: Stack,
    fields: dict[str, Any],
    exception: type[resend.exceptions.ResendError],
    name: str,
    words: str,
) -> None:
    params = {k: v for k, v in email(**fields).items() if v is not None}
    before = sdk.fake.delivered_count
    with pytest.raises(exception) as raised:
        await call(resend.Emails.send, params)
    assert (raised.value.code, raised.value.error_type) == (422, name)
    assert words in raised.value.message
    assert "ann-" not in raised.value.message  # the recipient is never echoed
    assert sdk.fake.delivered_count == before


async def test_sdk_without_key_or_with_a_wrong_one_raises_the_sdks_auth_errors(
    sdk: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = sdk.fake.delivered_count
    monkeypatch.setattr(resend, "api_key", "")
    with pytest.raises(resend.exceptions.MissingApiKeyError) as missing:
        await call(resend.Emails.send, email())
    assert (missing.value.code, missing.value.error_type) == (401, "missing_api_key")
    monkeypatch.setattr(resend, "api_key", "re_not_ours")
    with pytest.raises(resend.exceptions.InvalidApiKeyError) as invalid:
        await call(resend.Emails.send, email())
    assert (invalid.value.code, invalid.value.error_type) == (403, "invalid_api_key")
    assert sdk.fake.delivered_count == before


@pytest.mark.parametrize("email_id", ["em_0123456789abcdef0123456789abcdef", "4ef9a417-02e9"])
async def test_sdk_unknown_email_raises_not_found(sdk: Stack, email_id: str) -> None:
    with pytest.raises(resend.exceptions.ResendError) as raised:
        await call(resend.Emails.get, email_id)
    assert (raised.value.code, raised.value.error_type) == (404, "not_found")


async def test_sdk_send_answers_without_waiting_for_a_slow_provider(sdk: Stack) -> None:
    latency = 3.0
    sdk.fake.configure(latency=latency)
    try:
        started = time.perf_counter()
        email_id = (await call(resend.Emails.send, email()))["id"]
        answered = time.perf_counter() - started
        await wait_last_event(email_id, "sent")
    finally:
        sdk.fake.configure(latency=0.0)
    # The blocking call an app makes now waits for a durable record, not for the provider.
    assert answered < latency / 2, answered
    assert len(deliveries_of(sdk.fake, email_id)) == 1


# -- tenants: two tenants' keys through the SDK ------------------------------------------------


def use_key(monkeypatch: pytest.MonkeyPatch, key: str) -> None:
    """The SDK's key from now on (one app, one key: the SDK holds it globally)."""
    monkeypatch.setattr(resend, "api_key", key)


async def test_sdk_tenant_sends_for_its_tenant_and_another_tenant_cannot_see_or_touch_it(
    sdk: Stack, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_key(monkeypatch, ACME_KEY)
    email_id = (await call(resend.Emails.send, email(scheduled_at=in_future(hours=1))))["id"]
    assert (await call(resend.Emails.get, email_id))["last_event"] == "scheduled"

    use_key(monkeypatch, GLOBEX_KEY)
    attempts: list[tuple[Callable[..., Any], Any]] = [
        (resend.Emails.get, email_id),
        (resend.Emails.cancel, email_id),
        (resend.Emails.update, {"id": email_id, "scheduled_at": in_future(seconds=2)}),
    ]
    for fn, arg in attempts:
        with pytest.raises(resend.exceptions.ResendError) as raised:
            await call(fn, arg)
        # The same answer as an id that does not exist: no oracle, nothing changed.
        assert (raised.value.code, raised.value.error_type) == (404, "not_found"), fn
        assert raised.value.message == "no email with this id"

    use_key(monkeypatch, ACME_KEY)
    got: dict[str, Any] = dict(await call(resend.Emails.get, email_id))
    assert got["last_event"] == "scheduled"
    assert datetime.fromisoformat(got["scheduled_at"]) > datetime.now(UTC) + timedelta(minutes=30)
    # The send belongs to acme: its input and its search attribute say so.
    async with httpx.AsyncClient(
        base_url=sdk.url, headers={"Authorization": f"Bearer {API_KEY}"}
    ) as api:
        v1 = (await api.get(f"/v1/emails/{email_id}")).json()
    described = await client.get_workflow_handle(v1["workflow_id"]).describe()
    assert described.typed_search_attributes.get(TENANT_ID) == sdk.acme
    # The operator sees every tenant's email, and acme can cancel its own.
    use_key(monkeypatch, API_KEY)
    assert (await call(resend.Emails.get, email_id))["id"] == email_id
    use_key(monkeypatch, ACME_KEY)
    assert (await call(resend.Emails.cancel, email_id))["id"] == email_id
    assert deliveries_of(sdk.fake, email_id) == []


@pytest.mark.parametrize(
    "sender", ["Globex <news@globex.example>", "ceo@acme.example.evil.io", "x@mail.acme.example"]
)
async def test_sdk_tenant_cannot_send_from_outside_its_sender_domains(
    sdk: Stack, monkeypatch: pytest.MonkeyPatch, sender: str
) -> None:
    use_key(monkeypatch, ACME_KEY)
    before = sdk.fake.delivered_count
    with pytest.raises(resend.exceptions.ResendError) as raised:
        await call(resend.Emails.send, email(**{"from": sender}))
    # As Resend answers a `from` outside the account's verified domains.
    assert (raised.value.code, raised.value.error_type) == (403, "validation_error")
    assert "`from`" in raised.value.message and "acme.example" in raised.value.message
    assert "globex" not in raised.value.message and "ann-" not in raised.value.message
    assert sdk.fake.delivered_count == before


async def test_sdk_idempotency_keys_are_scoped_by_tenant(
    sdk: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = f"welcome-user/{uuid.uuid4().hex}"
    use_key(monkeypatch, ACME_KEY)
    acme = await call(resend.Emails.send, email(), {"idempotency_key": key})
    use_key(monkeypatch, GLOBEX_KEY)
    # The same key, another tenant: its own send (not a 409, not acme's id).
    params = email(**{"from": "Globex <news@globex.example>"})
    globex = await call(resend.Emails.send, params, {"idempotency_key": key})
    again = await call(resend.Emails.send, params, {"idempotency_key": key})
    assert globex["id"] != acme["id"] and again["id"] == globex["id"]
    for email_id in (acme["id"], globex["id"]):
        use_key(monkeypatch, API_KEY)
        await wait_last_event(email_id, "sent")
        assert len(deliveries_of(sdk.fake, email_id)) == 1


async def test_sdk_retry_of_a_scheduled_send_after_its_time_replays_the_first_answer(
    sdk: Stack,
) -> None:
    params, key = email(scheduled_at=in_future(seconds=2)), f"reminder/{uuid.uuid4().hex}"
    first = await call(resend.Emails.send, params, {"idempotency_key": key})
    await wait_last_event(first["id"], "sent")
    assert datetime.fromisoformat(params["scheduled_at"]) < datetime.now(UTC)

    # The app's retry, now that `scheduled_at` has passed: the first answer, nothing new.
    again = await call(resend.Emails.send, params, {"idempotency_key": key})
    assert again["id"] == first["id"]
    assert again["http_headers"].get("idempotent-replayed") == "true"
    assert len(deliveries_of(sdk.fake, first["id"])) == 1
    # Another body under that key is still a 409; without a key, a past time is refused.
    other = {**params, "subject": "Another"}
    with pytest.raises(resend.exceptions.ResendError) as reused:
        await call(resend.Emails.send, other, {"idempotency_key": key})
    assert (reused.value.code, reused.value.error_type) == (409, "invalid_idempotent_request")
    with pytest.raises(resend.exceptions.ValidationError) as past:
        await call(resend.Emails.send, params)
    assert past.value.code == 422 and "`scheduled_at`" in past.value.message
    assert "future" in past.value.message
    fresh_key = f"reminder/{uuid.uuid4().hex}"
    with pytest.raises(resend.exceptions.ValidationError):
        await call(resend.Emails.send, params, {"idempotency_key": fresh_key})


# -- POST /emails/batch: SendBatch, one provider call --------------------------------------------


def batch_calls(fake: FakeResend, email_ids: list[str]) -> list[str | None]:
    """The provider calls that carried these emails (by the batch's provider idempotency key)."""
    keys = {d.idempotency_key for email_id in email_ids for d in deliveries_of(fake, email_id)}
    return [r.idempotency_key for r in fake.request_log if r.idempotency_key in keys]


async def test_sdk_batch_is_one_provider_call_with_one_delivery_per_email(
    sdk: Stack, client: Client
) -> None:
    params = [
        email(cc="carl@example.com", headers={"X-Entity-Ref-ID": "digest-1"}),
        email(tags=[{"name": "category", "value": "digest"}]),
        email(text="Plain"),
    ]
    sent = await call(resend.Batch.send, params)
    ids = [item["id"] for item in sent["data"]]
    assert len(ids) == 3 and len(set(ids)) == 3 and "errors" not in sent

    for email_id, item in zip(ids, params, strict=True):
        got = await wait_last_event(email_id, "sent")
        assert got["to"] == item["to"] and got["subject"] == item["subject"]
        [delivery] = deliveries_of(sdk.fake, email_id)
        assert delivery.payload["subject"] == item["subject"]
    first = deliveries_of(sdk.fake, ids[0])[0].payload
    assert first["cc"] == ["carl@example.com"]
    assert first["headers"] == {"X-Entity-Ref-ID": "digest-1"}
    assert {"name": "category", "value": "digest"} in deliveries_of(sdk.fake, ids[1])[0].payload[
        "tags"
    ]
    # One provider call for the three, under one key; each email once.
    assert len(batch_calls(sdk.fake, ids)) == 1
    assert sdk.fake.duplicates() == []
    # The same emails in /v1 and in Temporal: one SendBatch workflow.
    async with httpx.AsyncClient(
        base_url=sdk.url, headers={"Authorization": f"Bearer {API_KEY}"}
    ) as api:
        v1 = [(await api.get(f"/v1/emails/{email_id}")).json() for email_id in ids]
    assert {item["workflow_id"] for item in v1} == {v1[0]["workflow_id"]}
    described = await client.get_workflow_handle(v1[0]["workflow_id"]).describe()
    assert described.workflow_type == "SendBatch"
    # A batch's emails went out together: they cannot be cancelled or moved one by one.
    with pytest.raises(resend.exceptions.ValidationError):
        await call(resend.Emails.cancel, ids[0])
    with pytest.raises(resend.exceptions.ValidationError):
        await call(resend.Emails.update, {"id": ids[0], "scheduled_at": in_future(hours=1)})


async def test_sdk_batch_idempotency_key_replays_the_ids_and_sends_once(sdk: Stack) -> None:
    params, key = [email(), email()], f"digest/{uuid.uuid4().hex}"
    first = await call(resend.Batch.send, params, {"idempotency_key": key})
    again = await call(resend.Batch.send, params, {"idempotency_key": key})
    ids = [item["id"] for item in first["data"]]
    assert [item["id"] for item in again["data"]] == ids
    assert again["http_headers"].get("idempotent-replayed") == "true"
    with pytest.raises(resend.exceptions.ResendError) as reused:
        await call(resend.Batch.send, [email(), email()], {"idempotency_key": key})
    assert (reused.value.code, reused.value.error_type) == (409, "invalid_idempotent_request")
    for email_id in ids:
        await wait_last_event(email_id, "sent")
        assert len(deliveries_of(sdk.fake, email_id)) == 1
    assert len(batch_calls(sdk.fake, ids)) == 1


async def test_sdk_batch_permissive_sends_the_valid_emails_and_lists_the_others(
    sdk: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_key(monkeypatch, ACME_KEY)
    params = [
        email(),
        email(to=["not-an-address"]),
        email(**{"from": "Globex <news@globex.example>"}),
        email(attachments=[{"filename": "a.txt", "content": "aGk="}]),
        email(),
    ]
    sent = await call(resend.Batch.send, params, {"batch_validation": "permissive"})
    ids = [item["id"] for item in sent["data"]]
    assert len(ids) == 2
    errors = {e["index"]: e["message"] for e in sent["errors"]}
    assert set(errors) == {1, 2, 3}
    assert "`to`" in errors[1] and "acme.example" in errors[2] and "attachments" in errors[3]
    assert not any("ann-" in message for message in errors.values())
    for email_id, item in zip(ids, [params[0], params[4]], strict=True):
        got = await wait_last_event(email_id, "sent")
        assert got["subject"] == item["subject"]
        assert len(deliveries_of(sdk.fake, email_id)) == 1
    # Another tenant does not see them.
    use_key(monkeypatch, GLOBEX_KEY)
    with pytest.raises(resend.exceptions.ResendError) as hidden:
        await call(resend.Emails.get, ids[0])
    assert (hidden.value.code, hidden.value.error_type) == (404, "not_found")


async def test_sdk_batch_strict_refuses_the_batch_for_one_email_and_records_nothing(
    sdk: Stack,
) -> None:
    key = f"digest/{uuid.uuid4().hex}"
    bad = [email(), email(scheduled_at=in_future(hours=1)), email()]
    with pytest.raises(resend.exceptions.ValidationError) as raised:
        await call(resend.Batch.send, bad, {"idempotency_key": key})
    assert raised.value.code == 422 and raised.value.message.startswith("emails[1]: ")
    assert "`scheduled_at` is not supported in a batch" in raised.value.message
    with pytest.raises(resend.exceptions.ValidationError) as too_many:
        await call(resend.Batch.send, [email() for _ in range(101)])
    assert "100" in too_many.value.message
    # Nothing was recorded under the key: the corrected batch is a new one, not a 409.
    fixed = await call(resend.Batch.send, [bad[0], bad[2]], {"idempotency_key": key})
    assert fixed["http_headers"].get("idempotent-replayed") is None
    for item in fixed["data"]:
        await wait_last_event(item["id"], "sent")


NODE_SDK = Path(__file__).resolve().parent.parent / ".dev" / "node" / "node_modules"


# A test that runs Resend's Node SDK (`make test` installs it).
needs_node_sdk = pytest.mark.skipif(
    shutil.which("node") is None or not (NODE_SDK / "resend").is_dir(),
    reason="node and Resend's Node SDK: npm install --prefix .dev/node resend@6",
)


async def run_node(script: str, url: str, key: str, **env: str) -> Any:
    """Run tests/node/<script> with the SDK pointed at `url`; what it printed, as JSON."""
    node = await asyncio.create_subprocess_exec(
        "node",
        str(Path(__file__).parent / "node" / script),
        env={
            **os.environ,
            "NODE_PATH": str(NODE_SDK),
            "RESEND_BASE_URL": url,
            "RESEND_API_KEY": key,
            **env,
        },
        stdout=asyncio.subprocess.PIPE,
    )
    stdout, _ = await asyncio.wait_for(node.communicate(), timeout=60)
    assert node.returncode == 0
    return json.loads(stdout)


@needs_node_sdk
async def test_node_sdk_with_only_the_base_url_changed(sdk: Stack) -> None:
    to = f"node-{uuid.uuid4().hex[:8]}@example.com"
    answers = await run_node("drop_in.cjs", sdk.url, API_KEY, TO=to)
    email_id = answers["first"]["data"]["id"]
    assert email_id.startswith("em_") and answers["first"]["error"] is None
    assert answers["again"]["data"]["id"] == email_id
    assert answers["invalid"]["data"] is None
    assert answers["invalid"]["error"]["name"] == "validation_error"
    assert answers["got"]["data"]["id"] == email_id and answers["got"]["data"]["to"] == [to]
    await wait_last_event(email_id, "sent")
    assert len(deliveries_of(sdk.fake, email_id)) == 1


# -- in-process: outages and the guard's refusals, in Resend's format -------------------------


@pytest.fixture
async def api_without_temporal(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = await app_without_temporal(settings, sender_domains="acme.example")
    async with asgi_client(app) as http:
        yield http


async def test_temporal_unreachable_is_503_in_resends_format_never_an_id(
    api_without_temporal: httpx.AsyncClient,
) -> None:
    response = await api_without_temporal.post("/emails", json=email())
    assert response.status_code == 503
    body = response.json()
    assert set(body) == {"statusCode", "name", "message"} and body["statusCode"] == 503
    assert "not accepted" in body["message"] and "id" not in body
    assert response.headers["retry-after"] == "1"
    assert (await api_without_temporal.get("/emails/em_0123456789abcdef")).status_code == 503


async def test_rate_limit_and_body_limit_answer_in_resends_format(
    client: Client, settings: Settings, tmp_path: Path
) -> None:
    tight = settings.model_copy(
        update={
            "api_rate_limit_burst": 1,
            "api_rate_limit_per_second": 0.01,
            "max_request_bytes": 64,
        }
    )
    app: FastAPI = create_app(tight, temporal_client=client)
    async with asgi_client(app) as api:
        large = await api.post("/emails", json=email(html="x" * 100))
        limited = await api.post("/emails", json=email())
    assert large.status_code == 413
    assert large.json()["name"] == "validation_error" and "64 bytes" in large.json()["message"]
    assert limited.status_code == 429
    assert limited.json() == {
        "statusCode": 429,
        "name": "rate_limit_exceeded",
        "message": limited.json()["message"],
    }
    assert int(limited.headers["retry-after"]) >= 1


async def test_v1_keeps_its_own_error_format(api: httpx.AsyncClient) -> None:
    unknown = await api.get("/v1/emails/em_0123456789abcdef")
    assert unknown.status_code == 404 and unknown.json() == {"detail": "no email with this id"}
    no_key = await api.post("/v1/emails", json={}, headers={"Authorization": ""})
    assert no_key.status_code == 401 and "detail" in no_key.json()


def test_openapi_shows_the_resend_surface_under_its_own_tag(app: FastAPI) -> None:
    spec = app.openapi()
    tagged = {
        (method.upper(), path)
        for path, operations in spec["paths"].items()
        for method, operation in operations.items()
        if TAG in operation.get("tags", [])
    }
    assert tagged == {
        ("POST", "/emails"),
        ("GET", "/emails"),
        ("POST", "/emails/batch"),
        ("GET", "/emails/{email_id}"),
        ("PATCH", "/emails/{email_id}"),
        ("POST", "/emails/{email_id}/cancel"),
        # Webhook endpoints (api/resend_compat/webhooks.py).
        ("POST", "/webhooks"),
        ("GET", "/webhooks"),
        ("GET", "/webhooks/{webhook_id}"),
        ("PATCH", "/webhooks/{webhook_id}"),
        ("DELETE", "/webhooks/{webhook_id}"),
        ("POST", "/webhooks/{webhook_id}/signing-secret/rotate"),
        # Webhook events (api/resend_compat/webhook_events.py).
        ("GET", "/webhooks/{webhook_id}/events"),
        ("GET", "/webhooks/{webhook_id}/events/{event_id}"),
        ("GET", "/webhooks/{webhook_id}/events/{event_id}/attempts"),
        ("POST", "/webhooks/{webhook_id}/events/{event_id}/replay"),
        ("POST", "/suppressions"),
        ("GET", "/suppressions"),
        ("GET", "/suppressions/{id_or_email}"),
        ("DELETE", "/suppressions/{id_or_email}"),
        ("POST", "/suppressions/batch/add"),
        ("POST", "/suppressions/batch/remove"),
    }
    assert not any(path.startswith("/v1") for _, path in tagged)
    assert TAG in {t["name"] for t in spec["tags"]}


def test_every_status_has_a_resend_last_event() -> None:
    assert set(LAST_EVENT) == set(SendStatus)
