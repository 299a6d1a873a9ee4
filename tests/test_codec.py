"""Encrypted payloads: the codec, the codec server, and what the Temporal database holds."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from cryptography.exceptions import InvalidTag
from fastapi import FastAPI
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload
from temporalio.client import Client
from temporalio.converter import DataConverter
from temporalio.service import RPCError

from activities.coalesce_types import coalescer_id
from activities.invite_tokens import PLACEHOLDER
from config import Settings
from infra.codec import CodecKeyError, EncryptionCodec, new_codec_key, parse_codec_keys
from infra.temporal_client import data_converter
from testkit.dev_server import temporal_binary
from testkit.fake_resend import FakeResendServer, Fault
from testkit.keys import ACME_KEY, API_KEY, CODEC_KEYS, CODEC_UI_SECRET, FAKE_KEY, GLOBEX_KEY
from tests.helpers import INVITE, asgi_client, readable_text, wait_for_status

UI_ORIGIN = "http://localhost:8233"


def converter(keys: str) -> DataConverter:
    return data_converter(Settings(_env_file=None, payload_codec_keys=keys))


async def test_codec_round_trips_and_old_key_still_decrypts_after_rotation() -> None:
    old, new = new_codec_key("2025-01"), new_codec_key("2026-01")
    before = converter(old)
    after = converter(f"{new},{old}")

    [stored] = await before.encode(["ann@example.com"])
    assert stored.metadata["encoding"] == b"binary/encrypted"
    assert stored.metadata["encryption-key-id"] == b"2025-01"
    assert b"ann@example.com" not in stored.data
    assert await after.decode([stored], [str]) == ["ann@example.com"]
    [fresh] = await after.encode(["ann@example.com"])
    assert fresh.metadata["encryption-key-id"] == b"2026-01"

    with pytest.raises(CodecKeyError, match="2025-01"):
        await converter(new).decode([stored], [str])


async def test_codec_rejects_tampered_payloads_and_passes_plain_ones_through() -> None:
    codec = EncryptionCodec.from_config(CODEC_KEYS)
    [sealed] = await codec.encode([Payload(metadata={"encoding": b"json/plain"}, data=b'"x"')])
    tampered = Payload()
    tampered.CopyFrom(sealed)
    tampered.data = sealed.data[:-1] + bytes([sealed.data[-1] ^ 1])
    with pytest.raises(InvalidTag):
        await codec.decode([tampered])
    relabelled = Payload()
    relabelled.CopyFrom(sealed)
    relabelled.metadata["encryption-key-id"] = b"test-1"
    with pytest.raises(InvalidTag):
        await codec.decode([relabelled])
    # Written before encryption was turned on: still readable.
    plain = Payload(metadata={"encoding": b"json/plain"}, data=b'"x"')
    assert await codec.decode([plain]) == [plain]


@pytest.mark.parametrize(
    "value",
    ["nokey", ":" + base64.b64encode(b"k" * 32).decode(), "k1:not-base64!", "k1:" + "QUJD"],
)
def test_malformed_codec_keys_are_refused_at_startup(value: str) -> None:
    with pytest.raises(CodecKeyError):
        parse_codec_keys(value)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def proto_json(payloads: list[Payload]) -> dict[str, Any]:
    return {"payloads": [json_format.MessageToDict(p) for p in payloads]}


async def test_codec_server_decodes_and_encodes_for_an_operator_with_a_key(
    api: httpx.AsyncClient, client: Client
) -> None:
    stored = await client.data_converter.encode([{"to": "ann@example.com"}])
    response = await api.post("/codec/decode", json=proto_json(stored))
    assert response.status_code == 200, response.text
    [decoded] = response.json()["payloads"]
    assert base64.b64decode(decoded["metadata"]["encoding"]) == b"json/plain"
    assert json.loads(base64.b64decode(decoded["data"])) == {"to": "ann@example.com"}

    encoded = await api.post("/codec/encode", json={"payloads": [decoded]})
    assert encoded.status_code == 200
    [again] = encoded.json()["payloads"]
    assert base64.b64decode(again["metadata"]["encoding"]) == b"binary/encrypted"
    payload = json_format.ParseDict(again, Payload())
    assert await client.data_converter.decode([payload]) == [{"to": "ann@example.com"}]

    garbage = await api.post("/codec/decode", content=b"[1, 2")
    assert garbage.status_code == 400
    corrupt = {
        "payloads": [{**stored_json(stored[0]), "data": base64.b64encode(b"x" * 40).decode()}]
    }
    assert (await api.post("/codec/decode", json=corrupt)).status_code == 400


def stored_json(payload: Payload) -> dict[str, Any]:
    return json_format.MessageToDict(payload)


@pytest.fixture
async def browser(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The Web UI's requests: from its origin, on loopback, without our API key."""
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://api.test", headers={"Origin": UI_ORIGIN}
    ) as http:
        yield http


async def test_codec_server_answers_the_web_uis_cors_preflight(browser: httpx.AsyncClient) -> None:
    preflight = await browser.options(
        "/codec/decode",
        headers={
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,x-namespace",
        },
    )
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == UI_ORIGIN
    assert preflight.headers["Access-Control-Allow-Credentials"] == "true"
    assert "x-namespace" in preflight.headers["Access-Control-Allow-Headers"]
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]

    elsewhere = await browser.options(
        "/codec/decode",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert "Access-Control-Allow-Origin" not in elsewhere.headers


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Forwarded-For": "127.0.0.1", "Forwarded": "for=127.0.0.1", "X-Real-IP": "::1"},
        {"Origin": "https://evil.example"},
        {"Referer": f"{UI_ORIGIN}/namespaces/default/workflows"},
        {"Authorization": "Bearer "},
    ],
    ids=["ui-origin-on-loopback", "forwarded-loopback", "other-origin", "ui-referer", "empty"],
)
async def test_codec_server_refuses_without_a_credential_whatever_the_origin(
    browser: httpx.AsyncClient, client: Client, headers: dict[str, str]
) -> None:
    # `browser` is on loopback and sends the Web UI's Origin: neither grants anything.
    body = proto_json(await client.data_converter.encode(["ann@example.com"]))
    for path in ("/codec/decode", "/codec/encode", "/codec/not-the-secret/decode"):
        refused = await browser.post(path, json=body, headers=headers)
        assert refused.status_code == 401, (path, refused.text)
        assert "ann@example.com" not in refused.text


async def test_codec_server_decodes_for_operators_only(
    browser: httpx.AsyncClient, client: Client
) -> None:
    body = proto_json(await client.data_converter.encode(["ann@example.com"]))
    refused = await browser.post("/codec/decode", json=body)
    # The browser can read the refusal (CORS headers on errors too).
    assert refused.headers["Access-Control-Allow-Origin"] == UI_ORIGIN
    # A tenant's key is authenticated, but decrypts nothing: every tenant's payloads pass here.
    for tenant_key in (ACME_KEY, GLOBEX_KEY):
        tenant = await browser.post("/codec/decode", json=body, headers=bearer(tenant_key))
        assert tenant.status_code == 403
        assert "ann@example.com" not in tenant.text
    operator = await browser.post("/codec/decode", json=body, headers=bearer(API_KEY))
    assert operator.status_code == 200
    # The Web UI's capability URL (what `--ui-codec-endpoint` is given) acts as an operator.
    ui = await browser.post(f"/codec/{CODEC_UI_SECRET}/decode", json=body)
    assert ui.status_code == 200
    [decoded] = ui.json()["payloads"]
    assert json.loads(base64.b64decode(decoded["data"])) == "ann@example.com"
    assert (await browser.post(f"/codec/{CODEC_UI_SECRET}/encode", json=body)).status_code == 200


async def test_codec_capability_is_off_unless_configured(
    settings: Settings, client: Client
) -> None:
    from api.main import create_app

    without = create_app(
        settings.model_copy(update={"codec_ui_secret": None}), temporal_client=client
    )
    async with asgi_client(without, key=None) as http:
        body = proto_json(await client.data_converter.encode(["x"]))
        assert (await http.post(f"/codec/{CODEC_UI_SECRET}/decode", json=body)).status_code == 401
        assert (await http.post("/codec//decode", json=body)).status_code == 401


async def raw_histories(client: Client, workflow_ids: list[str]) -> dict[str, str]:
    """Each workflow's history as anyone with database or server access reads it: without
    the codec (a shard that carried nothing was never started)."""
    raw = await Client.connect(client.service_client.config.target_host, namespace="default")
    texts: dict[str, str] = {}
    for workflow_id in workflow_ids:
        try:
            history = await raw.get_workflow_handle(workflow_id).fetch_history()
        except RPCError:
            continue
        texts[workflow_id] = "\n".join(readable_text(history.to_json_dict()))
    return texts


async def test_temporal_history_holds_no_recipient_token_subject_body_or_key(
    shards: int,
    api: httpx.AsyncClient,
    worker: None,
    fake_resend: FakeResendServer,
    client: Client,
    settings: Settings,
) -> None:
    # A failed attempt first whose provider message quotes the recipient, as real ones can:
    # the failure's message is in clear (the Web UI shows it in the row), so it is our own
    # words; the provider's text is in its details, encrypted like every payload.
    quoting = f"mailbox {INVITE['email']} is temporarily unavailable"
    fake_resend.fake.enqueue_faults([Fault(status=500, message=quoting)])
    body = (await api.post("/v1/invites", json=INVITE)).json()
    await wait_for_status(api, body["invite_id"], "sent")
    [delivery] = fake_resend.fake.deliveries
    token = delivery.payload["text"].split("token=")[1].split()[0]
    secrets = {
        "recipient": INVITE["email"],
        "invite token": token,
        "subject": delivery.payload["subject"],
        "body text": "invited you to join",
        "inviter": INVITE["inviter_name"] + " invited",
        "Resend API key": FAKE_KEY,
        "our API key": API_KEY,
    }

    # The invite's history and its coalescer's, which records a coalesced call's attempts.
    queue = settings.send_task_queue
    texts = await raw_histories(
        client, [body["workflow_id"], *(coalescer_id(queue, n) for n in range(shards))]
    )
    [holder] = [w for w, t in texts.items() if "EVENT_TYPE_ACTIVITY_TASK_FAILED" in t]
    assert holder == body["workflow_id"] if shards == 0 else holder.startswith("coalescer:")
    text = "\n".join(texts.values())
    assert "binary/encrypted" in text
    assert {name: s for name, s in secrets.items() if s in text} == {}
    assert "is temporarily unavailable" not in text  # the provider's text, encrypted
    # ... and the row says why the attempt failed, without expanding it.
    readable = (
        "HTTP 500 application_error from the provider (ProviderUnavailable): "
        "may have been accepted, retryable"
    )
    assert readable in texts[holder] and "Encoded failure" not in text

    shown = await asyncio.create_subprocess_exec(
        temporal_binary(), "workflow", "show", "-w", holder,
        "--address", settings.temporal_address, "-o", "json",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    cli_out, _ = await shown.communicate()
    cli_text = "\n".join(readable_text(json.loads(cli_out)))
    assert {name: s for name, s in secrets.items() if s in cli_text} == {}
    assert readable in cli_text

    # Control: the same history, decoded with the codec, does hold the recipient and the
    # link; the token is never in history at all (its placeholder is: tests/test_invite_life).
    decoded = await client.get_workflow_handle(body["workflow_id"]).fetch_history()
    started = decoded.events[0].workflow_execution_started_event_attributes
    [workflow_input] = await client.data_converter.decode(started.input.payloads)
    assert workflow_input["to"] == INVITE["email"]
    assert workflow_input["accept_url"].endswith(f"&token={PLACEHOLDER}")
    attempts = await client.get_workflow_handle(holder).fetch_history()
    failed = next(e for e in attempts.events if e.HasField("activity_task_failed_event_attributes"))
    failure = failed.activity_task_failed_event_attributes.failure
    [details] = await client.data_converter.decode(
        failure.application_failure_info.details.payloads
    )
    assert details["provider_message"] == quoting and not details["not_accepted"]
