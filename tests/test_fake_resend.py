"""Tests of the fake Resend server: it must answer like Resend, and inject faults on demand."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import resend

from testkit.fake_resend import (
    DEFAULT_API_KEY,
    FakeResend,
    FakeResendProcess,
    FakeResendServer,
    Fault,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
AUTH = {"Authorization": f"Bearer {DEFAULT_API_KEY}"}


def email(**overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "from": "Acme <noreply@acme.test>",
        "to": ["ada@example.com"],
        "subject": "Welcome",
        "html": "<p>Hello Ada</p>",
    }
    payload.update(overrides)
    return payload


@pytest.fixture(scope="module")
def server() -> Iterator[FakeResendServer]:
    with FakeResendServer() as server:
        yield server


@pytest.fixture
def fake(server: FakeResendServer) -> FakeResend:
    server.fake.reset()
    return server.fake


@pytest.fixture
async def client(server: FakeResendServer, fake: FakeResend) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, headers=AUTH, timeout=10) as client:
        yield client


async def send(client: httpx.AsyncClient, payload: dict[str, Any], key: str) -> httpx.Response:
    return await client.post("/emails", json=payload, headers={"Idempotency-Key": key})


async def send_until_not_concurrent(
    client: httpx.AsyncClient, payload: dict[str, Any], key: str, timeout: float = 5.0
) -> httpx.Response:
    """Retry with the same key while Resend says the first request is still in progress."""
    deadline = time.monotonic() + timeout
    while True:
        response = await send(client, payload, key)
        if response.status_code != 409 or time.monotonic() >= deadline:
            return response
        assert response.json()["name"] == "concurrent_idempotent_requests"
        await asyncio.sleep(0.05)


def assert_resend_error(response: httpx.Response, status: int, name: str) -> None:
    """The fake answered `status` with Resend's error body named `name`."""
    assert response.status_code == status
    assert response.json()["name"] == name


async def test_send_email_without_api_key_is_401_missing_api_key(
    server: FakeResendServer, fake: FakeResend
) -> None:
    async with httpx.AsyncClient(base_url=server.url) as anonymous:
        response = await anonymous.post("/emails", json=email())

    assert_resend_error(response, 401, "missing_api_key")
    assert response.json()["statusCode"] == 401
    assert fake.delivered_count == 0


async def test_send_email_with_wrong_api_key_is_403_invalid_api_key(
    server: FakeResendServer, fake: FakeResend
) -> None:
    async with httpx.AsyncClient(base_url=server.url) as stranger:
        response = await stranger.post(
            "/emails", json=email(), headers={"Authorization": "Bearer re_wrong"}
        )

    assert_resend_error(response, 403, "invalid_api_key")
    assert fake.delivered_count == 0


@pytest.mark.parametrize(
    ("payload", "name", "in_message"),
    [
        ({"to": "a@example.com", "subject": "s", "text": "t"}, "missing_required_field", "from"),
        (email(to=None), "missing_required_field", "to"),
        (email(to=[]), "missing_required_field", "to"),
        (email(to=[f"u{i}@example.com" for i in range(51)]), "validation_error", "50"),
        (email(subject=None), "missing_required_field", "subject"),
        (email(html=None), "missing_required_field", "html"),
        (email(**{"from": "not an address"}), "validation_error", "from"),
        (email(tags=[{"name": "has space", "value": "x"}]), "validation_error", "tags"),
    ],
)
async def test_send_email_with_invalid_payload_is_422(
    client: httpx.AsyncClient,
    fake: FakeResend,
    payload: dict[str, Any],
    name: str,
    in_message: str,
) -> None:
    payload = {field: value for field, value in payload.items() if value is not None}
    response = await client.post("/emails", json=payload)

    assert_resend_error(response, 422, name)
    assert in_message in response.json()["message"]
    assert fake.delivered_count == 0


async def test_send_email_with_malformed_json_is_400_validation_error(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/emails", content=b"{not json", headers={"Content-Type": "application/json"}
    )

    assert_resend_error(response, 400, "validation_error")


@pytest.mark.parametrize("key", ["", "k" * 257])
async def test_idempotency_key_outside_1_to_256_chars_is_400(
    client: httpx.AsyncClient, fake: FakeResend, key: str
) -> None:
    response = await send(client, email(), key)

    assert_resend_error(response, 400, "invalid_idempotency_key")
    assert fake.delivered_count == 0


async def test_sent_email_is_recorded_and_readable_with_last_event_sent(
    client: httpx.AsyncClient, fake: FakeResend
) -> None:
    payload = email(
        to="Ada <ada@example.com>",
        text="Hello Ada",
        cc=["cc@example.com"],
        reply_to="help@acme.test",
        headers={"X-Entity-Ref-ID": "42"},
        tags=[{"name": "category", "value": "welcome"}],
    )
    sent = await client.post("/emails", json=payload)

    assert sent.status_code == 200
    email_id = sent.json()["id"]
    read = await client.get(f"/emails/{email_id}")
    assert read.status_code == 200
    assert read.json()["last_event"] == "sent"
    assert read.json()["to"] == ["Ada <ada@example.com>"]
    assert [d.id for d in fake.deliveries_for("ada@example.com")] == [email_id]
    assert fake.deliveries[0].payload == payload
    assert fake.requests_by_status == {200: 2}


async def test_unknown_email_route_and_method_answer_like_resend(
    client: httpx.AsyncClient,
) -> None:
    missing = await client.get("/emails/00000000-0000-4000-8000-000000000000")
    unknown_route = await client.get("/domains-and-more")
    wrong_method = await client.delete("/emails")

    assert (missing.status_code, missing.json()["name"]) == (404, "not_found")
    assert (unknown_route.status_code, unknown_route.json()["name"]) == (404, "not_found")
    assert (wrong_method.status_code, wrong_method.json()["name"]) == (405, "method_not_allowed")


async def test_same_key_and_payload_replays_same_id_without_second_delivery(
    client: httpx.AsyncClient, fake: FakeResend
) -> None:
    first = await send(client, email(), "welcome-user/1")
    again = await send(client, email(), "welcome-user/1")

    assert first.status_code == again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert fake.delivered_count == 1
    assert fake.duplicates() == []


async def test_same_key_with_other_payload_is_409_invalid_idempotent_request(
    client: httpx.AsyncClient, fake: FakeResend
) -> None:
    await send(client, email(), "welcome-user/2")
    changed = await send(client, email(subject="Welcome!"), "welcome-user/2")

    assert_resend_error(changed, 409, "invalid_idempotent_request")
    assert fake.delivered_count == 1


async def test_same_key_during_hold_is_409_concurrent_then_replayed(
    client: httpx.AsyncClient, fake: FakeResend
) -> None:
    fake.enqueue_faults([Fault(hold=0.5)])
    first = asyncio.create_task(send(client, email(), "welcome-user/3"))
    [delivery] = await fake.wait_for_deliveries(1, timeout=5)

    during = await send(client, email(), "welcome-user/3")
    assert_resend_error(during, 409, "concurrent_idempotent_requests")
    assert (await first).json()["id"] == delivery.id
    after = await send(client, email(), "welcome-user/3")
    assert after.json()["id"] == delivery.id
    assert fake.delivered_count == 1


async def test_hold_delivers_once_even_when_client_times_out(
    client: httpx.AsyncClient, fake: FakeResend
) -> None:
    fake.enqueue_faults([Fault(hold=1.0)])
    with pytest.raises(httpx.ReadTimeout):
        await client.post(
            "/emails", json=email(), headers={"Idempotency-Key": "invite/7"}, timeout=0.2
        )

    assert fake.delivered_count == 1
    retried = await send_until_not_concurrent(client, email(), "invite/7")
    assert retried.status_code == 200
    assert retried.json()["id"] == fake.deliveries[0].id
    assert fake.delivered_count == 1


@pytest.mark.parametrize(
    ("fault", "status", "name"),
    [
        (Fault(status=500), 500, "application_error"),
        (Fault(status=422), 422, "validation_error"),
        (Fault(status=429, name="daily_quota_exceeded"), 429, "daily_quota_exceeded"),
        (Fault(status=429, name="monthly_quota_exceeded"), 429, "monthly_quota_exceeded"),
    ],
)
async def test_scripted_fault_answers_resend_error_without_delivery(
    client: httpx.AsyncClient, fake: FakeResend, fault: Fault, status: int, name: str
) -> None:
    fake.enqueue_faults([fault])
    failed = await client.post("/emails", json=email())
    next_one = await client.post("/emails", json=email())

    assert failed.status_code == status
    assert failed.json() == {
        "statusCode": status,
        "name": name,
        "message": failed.json()["message"],
    }
    assert next_one.status_code == 200
    assert fake.delivered_count == 1


async def test_scripted_429_carries_retry_after(
    client: httpx.AsyncClient, fake: FakeResend
) -> None:
    fake.enqueue_faults([Fault(status=429, retry_after=2)])
    response = await client.post("/emails", json=email())

    assert_resend_error(response, 429, "rate_limit_exceeded")
    assert response.headers["retry-after"] == "2"


async def test_scripted_503_can_be_a_load_balancer_html_page(
    client: httpx.AsyncClient, fake: FakeResend
) -> None:
    fake.enqueue_faults([Fault(status=503, html=True)])
    response = await client.post("/emails", json=email())

    assert response.status_code == 503
    assert response.headers["content-type"].startswith("text/html")
    assert "503" in response.text


async def test_rate_limiter_answers_429_until_a_slot_frees(
    client: httpx.AsyncClient, fake: FakeResend
) -> None:
    fake.configure(rate_limit_per_second=2)
    answers = [await client.post("/emails", json=email(subject=f"#{i}")) for i in range(3)]

    assert [a.status_code for a in answers] == [200, 200, 429]
    limited = answers[2]
    assert limited.json()["name"] == "rate_limit_exceeded"
    assert limited.headers["retry-after"] == "1"
    assert limited.headers["ratelimit-limit"] == "2"
    assert limited.headers["ratelimit-remaining"] == "0"
    assert answers[0].headers["ratelimit-remaining"] == "1"

    # A client honouring retry-after gets through, and the log shows how long it waited.
    await asyncio.sleep(int(limited.headers["retry-after"]))
    retried = await client.post("/emails", json=email(subject="#2"))
    assert retried.status_code == 200
    log = fake.request_log
    assert log[-1].received_at - log[-2].received_at >= 1
    assert fake.delivered_count == 3


async def test_error_rate_fails_a_reproducible_fraction(
    client: httpx.AsyncClient, fake: FakeResend
) -> None:
    async def statuses() -> list[int]:
        fake.reset()
        fake.configure(error_rate=0.3, error_status=503)
        return [(await client.post("/emails", json=email())).status_code for _ in range(30)]

    first_run = await statuses()
    assert set(first_run) == {200, 503}
    assert fake.delivered_count == first_run.count(200)
    assert fake.requests_by_status == {200: first_run.count(200), 503: first_run.count(503)}
    assert await statuses() == first_run


async def test_latency_does_not_serialise_concurrent_requests(
    client: httpx.AsyncClient, fake: FakeResend
) -> None:
    fake.configure(latency=0.5)
    started = time.monotonic()
    answers = await asyncio.gather(
        *(client.post("/emails", json=email(subject=f"#{i}")) for i in range(25))
    )
    elapsed = time.monotonic() - started

    assert all(a.status_code == 200 for a in answers)
    assert 0.5 <= elapsed < 2.5
    assert fake.max_in_flight == 25
    assert fake.in_flight == 0


async def test_duplicates_are_resends_of_the_same_email_without_key(
    client: httpx.AsyncClient, fake: FakeResend
) -> None:
    await client.post("/emails", json=email())
    await client.post("/emails", json=email())
    await client.post("/emails", json=email(subject="Another"))

    assert fake.delivered_count == 3
    assert [d.payload["subject"] for d in fake.duplicates()] == ["Welcome"]


async def test_control_endpoints_drive_the_fake_over_http(
    client: httpx.AsyncClient, fake: FakeResend
) -> None:
    configured = await client.post("/_fake/config", json={"latency": 0.2, "api_key": "re_other"})
    assert configured.json()["latency"] == 0.2
    rejected = await client.post("/_fake/config", json={"latency": -1})
    assert rejected.status_code == 400
    queued = await client.post("/_fake/faults", json=[{"status": 500}, {"hold": 0.1}])
    assert queued.json() == {"pending_faults": 2}

    other_key = {"Authorization": "Bearer re_other"}
    started = time.monotonic()
    failed = await client.post("/emails", json=email(), headers=other_key)
    assert time.monotonic() - started >= 0.2
    sent = await client.post("/emails", json=email(), headers=other_key)
    assert (failed.status_code, sent.status_code) == (500, 200)

    stats = (await client.get("/_fake/stats")).json()
    assert stats["deliveries"] == 1
    assert stats["duplicates"] == 0
    assert stats["requests"] == 2
    assert stats["by_status"] == {"200": 1, "500": 1}
    assert stats["in_flight"] == 0
    [delivery] = (await client.get("/_fake/deliveries")).json()
    assert delivery["id"] == sent.json()["id"]
    assert delivery["to"] == ["ada@example.com"]

    await client.post("/_fake/reset")
    assert fake.delivered_count == 0
    assert fake.config.api_key == DEFAULT_API_KEY
    assert fake.config.latency == 0


async def test_resend_sdk_reads_the_fake_answers(
    server: FakeResendServer, fake: FakeResend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(resend, "api_key", DEFAULT_API_KEY)
    monkeypatch.setattr(resend, "api_url", server.url)
    params: resend.Emails.SendParams = {
        "from": "noreply@acme.test",
        "to": ["ada@example.com"],
        "subject": "Welcome",
        "html": "<p>Hi</p>",
    }
    sent = await resend.Emails.send_async(params, {"idempotency_key": "sdk/1"})
    fake.enqueue_faults([Fault(status=429, retry_after=3)])
    with pytest.raises(resend.exceptions.RateLimitError) as limited:
        await resend.Emails.send_async(params, {"idempotency_key": "sdk/2"})

    assert [d.id for d in fake.deliveries] == [sent["id"]]
    assert limited.value.headers is not None
    assert limited.value.headers["retry-after"] == "3"


async def test_cli_prints_its_url_and_serves_until_terminated() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "testkit.fake_resend", "--port", "0", "--latency", "0.1", "--rate-limit", "50"),
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), timeout=15)
        url = json.loads(line)["url"]
        async with httpx.AsyncClient(base_url=url, headers=AUTH) as client:
            sent = await client.post("/emails", json=email())
            stats = (await client.get("/_fake/stats")).json()
        assert sent.status_code == 200
        assert sent.headers["ratelimit-limit"] == "50"
        assert stats["deliveries"] == 1
    finally:
        process.terminate()
        try:
            returncode = await asyncio.wait_for(process.wait(), timeout=10)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise
    assert returncode == 0


async def test_control_client_scripts_a_fake_in_another_process(tmp_path: Path) -> None:
    fake = await FakeResendProcess.start(tmp_path, latency=0.0)
    try:
        control = fake.client
        assert (await control.configure(error_status=503)).error_status == 503
        with pytest.raises(ValueError, match="latency"):
            await control.configure(latency=-1)
        assert await control.enqueue_faults([Fault(status=503), Fault(hold=0.1)]) == 2
        async with httpx.AsyncClient(base_url=fake.url, headers=AUTH) as client:
            failed = await send(client, email(), "receipt/1")
            sent = await send(client, email(), "receipt/1")
        assert (failed.status_code, sent.status_code) == (503, 200)

        [delivery] = await control.wait_for_deliveries(1, timeout=5)
        assert delivery.id == sent.json()["id"]
        assert delivery.idempotency_key == "receipt/1" and delivery.to == ["ada@example.com"]
        stats = await control.stats()
        assert stats.by_status == {503: 1, 200: 1}
        assert (stats.deliveries, stats.pending_faults, stats.duplicates) == (1, 0, 0)

        cleared = await control.reset()
        assert (cleared.deliveries, cleared.requests) == (0, 0)
        assert (await control.config()).error_status == 500
    finally:
        await fake.close()
    assert not fake.proc.alive


async def test_stopping_the_server_answers_held_requests_and_keeps_their_delivery() -> None:
    server = FakeResendServer()
    await asyncio.to_thread(server.start)
    try:
        server.fake.enqueue_faults([Fault(hold=30)])
        async with httpx.AsyncClient(base_url=server.url, headers=AUTH) as client:
            held = asyncio.create_task(send(client, email(), "receipt/9"))
            [delivery] = await server.fake.wait_for_deliveries(1, timeout=5)
            started = time.monotonic()
            await asyncio.to_thread(server.stop)

            assert time.monotonic() - started < 5
            assert (await held).json() == {"id": delivery.id}
            assert server.fake.in_flight == 0
    finally:
        server.stop()


# -- POST /emails/batch ------------------------------------------------------------------------


async def send_batch(
    client: httpx.AsyncClient,
    payload: list[Any],
    key: str | None = None,
    mode: str | None = None,
) -> httpx.Response:
    headers = {"Idempotency-Key": key} if key else {}
    if mode:
        headers["x-batch-validation"] = mode
    return await client.post("/emails/batch", json=payload, headers=headers)


def batch(n: int) -> list[dict[str, Any]]:
    return [email(to=[f"user{i}@example.com"], subject=f"Hi {i}") for i in range(n)]


async def test_batch_sends_every_email_in_one_request_ids_in_order(
    client: httpx.AsyncClient, fake: FakeResend
) -> None:
    response = await send_batch(client, batch(3), "import/1")

    assert response.status_code == 200
    ids = [entry["id"] for entry in response.json()["data"]]
    assert "errors" not in response.json()
    assert ids == [d.id for d in fake.deliveries]
    assert [d.to for d in fake.deliveries] == [[f"user{i}@example.com"] for i in range(3)]
    assert [d.batch_index for d in fake.deliveries] == [0, 1, 2]
    assert fake.requests_total == 1
    assert fake.duplicates() == []


async def test_strict_batch_with_one_invalid_email_sends_nothing(
    client: httpx.AsyncClient, fake: FakeResend
) -> None:
    emails = batch(3)
    del emails[1]["subject"]
    strict = await send_batch(client, emails)
    with_attachment = await send_batch(client, [email(attachments=[{"content": "aGk="}])])
    too_many = await send_batch(client, batch(101))

    assert_resend_error(strict, 422, "missing_required_field")
    assert strict.json()["message"].startswith("emails[1]: ")
    assert with_attachment.status_code == 422
    assert "Attachments" in with_attachment.json()["message"]
    assert too_many.status_code == 422
    assert fake.delivered_count == 0


async def test_permissive_batch_refuses_invalid_emails_by_index_and_sends_the_others(
    client: httpx.AsyncClient, fake: FakeResend
) -> None:
    emails = batch(4)
    emails[0]["to"] = "not-an-address"
    fake.enqueue_faults([Fault(invalid_items=(2,))])
    response = await send_batch(client, emails, "import/2", mode="permissive")

    assert response.status_code == 200
    body = response.json()
    assert [e["index"] for e in body["errors"]] == [0, 2]
    assert all(e["message"] for e in body["errors"])
    assert [entry["id"] for entry in body["data"]] == [d.id for d in fake.deliveries]
    assert [d.batch_index for d in fake.deliveries] == [1, 3]


async def test_batch_key_replays_the_first_answer_and_refuses_another_payload(
    client: httpx.AsyncClient, fake: FakeResend
) -> None:
    fake.enqueue_faults([Fault(hold=1.0, invalid_items=(1,))])
    with pytest.raises(httpx.ReadTimeout):
        await client.post(
            "/emails/batch",
            json=batch(3),
            headers={"Idempotency-Key": "import/3", "x-batch-validation": "permissive"},
            timeout=0.2,
        )
    assert fake.delivered_count == 2

    deadline = time.monotonic() + 5
    permissive = "permissive"
    while (again := await send_batch(client, batch(3), "import/3", permissive)).status_code == 409:
        assert again.json()["name"] == "concurrent_idempotent_requests"
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    other = await send_batch(client, batch(2), "import/3", "permissive")
    single = await send(client, email(), "import/3")

    assert again.status_code == 200
    assert [entry["id"] for entry in again.json()["data"]] == [d.id for d in fake.deliveries]
    assert [e["index"] for e in again.json()["errors"]] == [1]
    assert (other.status_code, other.json()["name"]) == (409, "invalid_idempotent_request")
    assert (single.status_code, single.json()["name"]) == (409, "invalid_idempotent_request")
    assert fake.delivered_count == 2
    assert fake.duplicates() == []


async def test_resend_sdk_batch_send_reads_the_fake_answer(
    server: FakeResendServer, fake: FakeResend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(resend, "api_key", DEFAULT_API_KEY)
    monkeypatch.setattr(resend, "api_url", server.url)
    params: list[resend.Emails.SendParams] = [
        {"from": "noreply@acme.test", "to": [f"u{i}@example.com"], "subject": "Hi", "text": "x"}
        for i in range(2)
    ]
    sent = await resend.Batch.send_async(
        params, {"idempotency_key": "sdk/batch", "batch_validation": "permissive"}
    )

    assert [entry["id"] for entry in sent["data"]] == [d.id for d in fake.deliveries]
