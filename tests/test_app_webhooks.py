"""App webhooks against the real stack: the dev server, a worker, our API under uvicorn, the
fake Resend, and apps' endpoints on local ports (WEBHOOK_ALLOW_PRIVATE_URLS=true here).

Both Resend SDKs create endpoints and verify our signed events with their own `verify`; a
provider event is forwarded with our id; a failing endpoint still gets every event once, in
order; another tenant's endpoint sees none; SSRF attempts are refused.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import resend
import resend.exceptions
import uvicorn
from fastapi import FastAPI
from temporalio.client import Client

from activities.app_webhook_types import delivery_workflow_id, endpoints_workflow_id
from api.main import create_app
from config import Settings
from testkit.app_endpoint import Endpoint, Received, app_endpoint
from testkit.fake_resend import FakeResendServer, Fault
from testkit.in_process import api_and_worker
from testkit.keys import ACME_KEY, GLOBEX_KEY
from testkit.polling import eventually
from testkit.procs import free_port
from tests.conftest import Tenants
from tests.helpers import readable_text
from tests.webhooks import post_event
from worker import build_transport, build_workers

T = TypeVar("T")
NODE_SDK = Path(__file__).resolve().parent.parent / ".dev" / "node" / "node_modules"
SENDER = "Acme <invites@acme.example>"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Local endpoints allowed, and a retry schedule of fractions of a second."""
    return settings.model_copy(
        update={
            "webhook_allow_private_urls": True,
            "webhook_retry_delays": "0.2,0.4,0.8,1.6",
            "webhook_timeout_seconds": 5.0,
        }
    )


@pytest.fixture
async def served(app: FastAPI, worker: None) -> AsyncIterator[str]:
    """The API under uvicorn on a free port (the SDKs speak HTTP), with a worker."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    await eventually(lambda: server.started, what="uvicorn started")
    url = f"http://127.0.0.1:{port}"
    resend.api_url = url
    yield url
    server.should_exit = True
    await asyncio.wait_for(task, timeout=10)


async def as_tenant(key: str, call: Callable[..., T], *args: Any) -> T:
    """A Resend SDK call (sync, module-global key) in a thread, as `key`'s tenant."""
    resend.api_key = key
    return await asyncio.to_thread(call, *args)


def verified(received: Received, secret: str) -> dict[str, Any]:
    """The event as Resend's Python SDK verifies it (raises if the signature is wrong)."""
    event: dict[str, Any] = dict(
        resend.Webhooks.verify(
            {
                "payload": received.body.decode(),
                "headers": {
                    "id": received.headers["svix-id"],
                    "timestamp": received.headers["svix-timestamp"],
                    "signature": received.headers["svix-signature"],
                },
                "webhook_secret": secret,
            }
        )
    )
    return event


async def wait_accepted(endpoint: Endpoint, count: int, timeout: float = 30.0) -> list[Received]:
    async def enough() -> list[Received] | None:
        accepted = endpoint.accepted()
        return accepted if len(accepted) >= count else None

    return await eventually(enough, timeout=timeout, what=f"{count} events accepted")


async def send(to: str) -> str:
    params: resend.Emails.SendParams = {
        "from": SENDER,
        "to": [to],
        "subject": "Welcome",
        "html": "<p>hi</p>",
    }
    sent = await as_tenant(ACME_KEY, resend.Emails.send, params)
    return str(sent["id"])


async def test_sdk_endpoint_gets_our_signed_events_in_order_through_failures(
    served: str, api: httpx.AsyncClient, client: Client, tenants: Tenants
) -> None:
    with app_endpoint() as acme_hook, app_endpoint() as globex_hook:
        created = await as_tenant(
            ACME_KEY,
            resend.Webhooks.create,
            {
                "endpoint": acme_hook.url,
                "events": ["email.sent", "email.delivered", "email.opened"],
            },
        )
        secret = created["signing_secret"]
        assert created["object"] == "webhook" and secret.startswith("whsec_")
        everything: list[Any] = ["email.sent", "email.delivered", "email.bounced"]
        await as_tenant(
            GLOBEX_KEY, resend.Webhooks.create, {"endpoint": globex_hook.url, "events": everything}
        )
        # The app's endpoint fails for a while: 3 answers 500 before the first 200.
        acme_hook.fail_first = 3
        email_id = await send("ann@example.com")

        first = (await wait_accepted(acme_hook, 1))[0]
        event = verified(first, secret)
        assert event["type"] == "email.sent"
        assert event["data"]["email_id"] == email_id  # our id, the one the app holds
        assert event["data"]["to"] == ["ann@example.com"] and event["data"]["subject"] == "Welcome"
        # Its deliveries share the queue fairly by tenant (their attempts inherit the key).
        delivery = client.get_workflow_handle(delivery_workflow_id(tenants.acme, email_id))
        described = (await delivery.describe()).raw_description.workflow_execution_info
        assert described.priority.fairness_key == f"hooks:{tenants.acme}"

        # The provider reports delivery: forwarded to the app with our id.
        answer = await post_event(api, "email.delivered", email_id=email_id)
        assert answer.status_code == 200 and answer.json()["status"] == "accepted"
        # An open moves no status but reaches the app; a repeated provider event does not.
        await post_event(api, "email.opened", email_id=email_id, msg_id="msg_open_1")
        await post_event(api, "email.opened", email_id=email_id, msg_id="msg_open_1")
        accepted = await wait_accepted(acme_hook, 3)
        events = [verified(r, secret) for r in accepted]
        assert [e["type"] for e in events] == ["email.sent", "email.delivered", "email.opened"]
        assert {e["data"]["email_id"] for e in events} == {email_id}
        # Each event once (by svix-id), however many tries it took.
        ids = [r.headers["svix-id"] for r in accepted]
        assert len(set(ids)) == 3
        assert len(acme_hook.received) == 6  # 3 refused tries of `email.sent`, then 3
        status = await api.get(f"/v1/emails/{email_id}")
        assert status.json()["status"] == "delivered"

        # Attempts per event are visible, to this tenant only.
        acme = {"Authorization": f"Bearer {ACME_KEY}"}
        seen = await api.get(f"/v1/emails/{email_id}/webhook-deliveries", headers=acme)
        assert len(seen.json()["data"]) == 3  # the repeated open is not a fourth event
        rows = {row["type"]: row for row in seen.json()["data"]}
        assert rows["email.sent"]["attempts"] == 4 and rows["email.sent"]["status"] == "delivered"
        assert rows["email.delivered"]["attempts"] == 1
        globex = {"Authorization": f"Bearer {GLOBEX_KEY}"}
        hidden = await api.get(f"/v1/emails/{email_id}/webhook-deliveries", headers=globex)
        assert hidden.json()["data"] == []
        # The other tenant's endpoint saw none of acme's events.
        assert globex_hook.received == []


async def test_endpoint_api_is_per_tenant_with_resend_shapes(
    served: str, client: Client, tenants: Tenants
) -> None:
    with app_endpoint() as hook:
        made = [
            await as_tenant(
                ACME_KEY, resend.Webhooks.create, {"endpoint": hook.url, "events": ["email.sent"]}
            )
            for _ in range(3)
        ]
        ids = [m["id"] for m in made]
        page = await as_tenant(ACME_KEY, resend.Webhooks.list, {"limit": 2})
        assert page["object"] == "list" and page["has_more"] is True
        assert [w["id"] for w in page["data"]] == ids[::-1][:2]  # newest first
        rest = await as_tenant(ACME_KEY, resend.Webhooks.list, {"limit": 2, "after": ids[1]})
        assert [w["id"] for w in rest["data"]] == [ids[0]] and rest["has_more"] is False

        got = await as_tenant(ACME_KEY, resend.Webhooks.get, ids[0])
        assert got["endpoint"] == hook.url and got["status"] == "enabled"
        assert got["signing_secret"] == made[0]["signing_secret"]
        # Another tenant: the same 404 as an unknown id, for every operation.
        calls: list[tuple[Callable[..., Any], Any]] = [
            (resend.Webhooks.get, ids[0]),
            (resend.Webhooks.remove, ids[0]),
            (resend.Webhooks.update, {"webhook_id": ids[0], "status": "disabled"}),
            (resend.Webhooks.rotate_signing_secret, ids[0]),
        ]
        for call, arg in calls:
            with pytest.raises(resend.exceptions.ResendError) as hidden:
                await as_tenant(GLOBEX_KEY, call, arg)
            assert (hidden.value.code, hidden.value.error_type) == (404, "not_found")
        globex_list = await as_tenant(GLOBEX_KEY, resend.Webhooks.list)
        assert globex_list["data"] == []

        await as_tenant(
            ACME_KEY,
            resend.Webhooks.update,
            {"webhook_id": ids[0], "status": "disabled", "events": ["email.bounced"]},
        )
        changed = await as_tenant(ACME_KEY, resend.Webhooks.get, ids[0])
        assert changed["status"] == "disabled" and changed["events"] == ["email.bounced"]
        rotated = await as_tenant(ACME_KEY, resend.Webhooks.rotate_signing_secret, ids[0])
        assert rotated["signing_secret"].startswith("whsec_")
        assert rotated["signing_secret"] != made[0]["signing_secret"]
        # Secrets reach Temporal encrypted only (update arguments, results, queries).
        history = await client.get_workflow_handle(
            endpoints_workflow_id(tenants.acme)
        ).fetch_history()
        clear = "\n".join(readable_text(history.to_json_dict()))
        assert hook.url not in clear  # endpoint URLs are encrypted too
        for secret in [m["signing_secret"] for m in made] + [rotated["signing_secret"]]:
            assert secret not in clear and secret.removeprefix("whsec_") not in clear
        removed = await as_tenant(ACME_KEY, resend.Webhooks.remove, ids[0])
        assert removed["deleted"] is True
        with pytest.raises(resend.exceptions.ResendError) as gone:
            await as_tenant(ACME_KEY, resend.Webhooks.get, ids[0])
        assert gone.value.code == 404
        with pytest.raises(resend.exceptions.ResendError) as bad:
            await as_tenant(
                ACME_KEY, resend.Webhooks.create, {"endpoint": hook.url, "events": ["nope"]}
            )
        assert bad.value.error_type == "validation_error"


async def test_v1_refuses_endpoints_that_are_not_public_https(
    app: FastAPI, settings: Settings
) -> None:
    strict = create_app(settings.model_copy(update={"webhook_allow_private_urls": False}))
    strict.state.temporal_client = app.state.temporal_client
    transport = httpx.ASGITransport(app=strict)
    headers = {"Authorization": f"Bearer {ACME_KEY}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as http:
        for url in [
            "http://hooks.example.com/in",
            "https://127.0.0.1/in",
            "https://10.1.2.3/in",
            "https://169.254.169.254/latest/meta-data",
            "https://[::ffff:127.0.0.1]/in",
            "https://[fd00:ec2::254]/in",
            "https://user:pw@hooks.example.com/in",
        ]:
            answer = await http.post(
                "/v1/webhook-endpoints",
                json={"endpoint": url, "events": ["email.sent"]},
                headers=headers,
            )
            assert answer.status_code == 422, url
            assert answer.json()["detail"][0]["loc"] == ["body", "endpoint"]
        # The same on Resend's surface, in Resend's error format.
        answer = await http.post(
            "/webhooks",
            json={"endpoint": "https://127.0.0.1/in", "events": ["email.sent"]},
            headers=headers,
        )
        assert answer.status_code == 400 and answer.json()["name"] == "validation_error"


async def test_a_name_resolving_to_loopback_is_refused_when_delivering(
    client: Client, settings: Settings
) -> None:
    """The create-time check cannot see where a name leads; the connect-time check refuses
    it, every attempt is recorded, and the endpoint behind it receives nothing."""
    strict = settings.model_copy(
        update={"webhook_allow_private_urls": False, "webhook_retry_delays": "0.2"}
    )
    async with api_and_worker(client, strict, ACME_KEY) as api:
        with app_endpoint() as hook:
            port = hook.url.split(":")[2].split("/")[0]
            made = await api.post(
                "/v1/webhook-endpoints",
                json={"endpoint": f"https://localhost:{port}/in", "events": ["email.sent"]},
            )
            assert made.status_code == 200, made.text
            sent = await api.post(
                "/emails",
                json={"from": SENDER, "to": ["ann@example.com"], "subject": "s", "text": "t"},
            )
            email_id = sent.json()["id"]

            async def failed() -> list[dict[str, Any]] | None:
                answer = await api.get(f"/v1/emails/{email_id}/webhook-deliveries")
                rows: list[dict[str, Any]] = answer.json()["data"]
                return rows if rows and rows[0]["status"] == "failed" else None

            rows = await eventually(failed, timeout=30, what="delivery failed")
            assert rows[0]["attempts"] == 2
            assert "loopback" in rows[0]["last_error"]
            assert hook.received == []


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
@pytest.mark.skipif(
    not (NODE_SDK / "resend").is_dir(),
    reason="Resend's Node SDK: make .dev/node/node_modules/resend/package.json",
)
async def test_node_sdk_creates_an_endpoint_and_verifies_our_event(served: str) -> None:
    script = Path(__file__).parent / "node" / "app_webhooks.cjs"
    env = {**os.environ, "NODE_PATH": str(NODE_SDK), "RESEND_BASE_URL": served}

    async def node(*args: str, stdin: bytes = b"") -> Any:
        proc = await asyncio.create_subprocess_exec(
            "node",
            str(script),
            *args,
            env={**env, "RESEND_API_KEY": ACME_KEY},
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await asyncio.wait_for(proc.communicate(stdin), timeout=60)
        assert proc.returncode == 0
        return json.loads(out)

    with app_endpoint() as hook:
        answers = await node("create", hook.url)
        created = answers["created"]["data"]
        assert created["object"] == "webhook" and created["signing_secret"].startswith("whsec_")
        assert answers["got"]["data"]["endpoint"] == hook.url
        assert created["id"] in [w["id"] for w in answers["list"]["data"]["data"]]
        email_id = await send("bob@example.com")
        received = (await wait_accepted(hook, 1))[0]
        headers = {k: received.headers[f"svix-{k}"] for k in ("id", "timestamp", "signature")}
        check = {"payload": received.body.decode(), "headers": headers}
        good = await node(
            "verify", stdin=json.dumps({**check, "secret": created["signing_secret"]}).encode()
        )
        assert good["event"]["type"] == "email.sent"
        assert good["event"]["data"]["email_id"] == email_id
        forged = await node(
            "verify", stdin=json.dumps({**check, "secret": "whsec_" + "A" * 32}).encode()
        )
        assert "error" in forged


async def test_a_delivery_survives_a_worker_restart(
    client: Client, settings: Settings, api: httpx.AsyncClient
) -> None:
    """The worker stops while the endpoint is failing; a new worker delivers the event,
    once, with the attempts of both workers counted."""
    patient = settings.model_copy(update={"webhook_retry_delays": "0.5,1,2,4,8,16"})
    app = create_app(patient, temporal_client=client)
    headers = {"Authorization": f"Bearer {ACME_KEY}"}
    transport = httpx.ASGITransport(app=app)
    async with (
        httpx.AsyncClient(base_url=patient.resend_api_url) as http,
        httpx.AsyncClient(transport=transport, base_url="http://api.test", headers=headers) as ours,
    ):
        with app_endpoint() as hook:
            hook.fail_first = 1000
            first = build_workers(client, patient, build_transport(patient, http))
            async with first[0], first[1]:
                made = await ours.post(
                    "/v1/webhook-endpoints", json={"endpoint": hook.url, "events": ["email.sent"]}
                )
                assert made.status_code == 200, made.text
                sent = await ours.post(
                    "/emails",
                    json={"from": SENDER, "to": ["ann@example.com"], "subject": "s", "text": "t"},
                )
                email_id = sent.json()["id"]
                await eventually(lambda: len(hook.received) >= 2, what="two failed tries")
            tries_before = len(hook.received)
            hook.fail_first = 0  # the endpoint recovers while no worker runs
            second = build_workers(client, patient, build_transport(patient, http))
            async with second[0], second[1]:
                accepted = await wait_accepted(hook, 1)

                async def delivered() -> list[dict[str, Any]] | None:
                    answer = await ours.get(f"/v1/emails/{email_id}/webhook-deliveries")
                    rows: list[dict[str, Any]] = answer.json()["data"]
                    return rows if rows and rows[0]["status"] == "delivered" else None

                rows = await eventually(delivered, what="delivered after the restart")
            assert json.loads(accepted[0].body)["data"]["email_id"] == email_id
            assert len(hook.accepted()) == 1
            # The tries of both workers count (one cut short by the stop may not have
            # reached the endpoint, so not `==`).
            assert rows[0]["attempts"] > tries_before >= 2


async def test_failed_scheduled_and_canceled_reach_the_app(
    api: httpx.AsyncClient, worker: None, fake_resend: FakeResendServer
) -> None:
    acme = {"Authorization": f"Bearer {ACME_KEY}"}
    with app_endpoint() as hook:
        made = await api.post(
            "/webhooks",
            json={
                "endpoint": hook.url,
                "events": ["email.scheduled", "email.canceled", "email.failed"],
            },
            headers=acme,
        )
        secret = made.json()["signing_secret"]
        # The provider refuses for good: the send ends `failed`, and the app hears it.
        fake_resend.fake.enqueue_faults([Fault(status=422, name="validation_error")])
        body = {"from": SENDER, "to": ["ann@example.com"], "subject": "s", "text": "t"}
        failing = (await api.post("/emails", json=body, headers=acme)).json()["id"]
        failed = verified((await wait_accepted(hook, 1))[0], secret)
        assert failed["type"] == "email.failed" and failed["data"]["email_id"] == failing
        assert failed["data"]["failed"]["reason"]
        later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        scheduled = (
            await api.post("/emails", json={**body, "scheduled_at": later}, headers=acme)
        ).json()["id"]
        await wait_accepted(hook, 2)
        cancelled = await api.post(f"/emails/{scheduled}/cancel", headers=acme)
        assert cancelled.status_code == 200
        events = [verified(r, secret) for r in await wait_accepted(hook, 3)]
        assert [(e["type"], e["data"]["email_id"]) for e in events[1:]] == [
            ("email.scheduled", scheduled),
            ("email.canceled", scheduled),
        ]


async def test_each_email_of_a_batch_reaches_the_app_with_its_own_id(
    api: httpx.AsyncClient, worker: None, fake_resend: FakeResendServer
) -> None:
    """A batch call's emails are emails too: each one's `email.sent` (or `email.failed`, for
    the one the provider refuses in a permissive call) and its delivery events, with its id."""
    acme = {"Authorization": f"Bearer {ACME_KEY}"}
    with app_endpoint() as hook:
        made = await api.post(
            "/webhooks",
            json={"endpoint": hook.url, "events": ["email.sent", "email.failed", "email.bounced"]},
            headers=acme,
        )
        secret = made.json()["signing_secret"]
        fake_resend.fake.enqueue_faults([Fault(invalid_items=(1,))])
        emails = [
            {"from": SENDER, "to": [f"user{i}@example.com"], "subject": "s", "text": "t"}
            for i in range(3)
        ]
        answer = await api.post(
            "/emails/batch",
            json=emails,
            headers={**acme, "x-batch-validation": "permissive"},
        )
        assert answer.status_code == 200, answer.text
        ids = [item["id"] for item in answer.json()["data"]]
        events = [verified(r, secret) for r in await wait_accepted(hook, 3)]
        assert sorted((e["data"]["email_id"], e["type"]) for e in events) == sorted(
            [(ids[0], "email.sent"), (ids[1], "email.failed"), (ids[2], "email.sent")]
        )
        assert {e["data"]["to"][0] for e in events} == {f"user{i}@example.com" for i in range(3)}
        # A provider event about one item reaches the app with that item's id.
        posted = await post_event(api, "email.bounced", email_id=ids[2])
        assert posted.status_code == 200, posted.text
        bounced = verified((await wait_accepted(hook, 4))[3], secret)
        assert (bounced["type"], bounced["data"]["email_id"]) == ("email.bounced", ids[2])
