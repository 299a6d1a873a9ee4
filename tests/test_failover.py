"""SMTP and failover through the whole engine: the API, a real worker, the delivery loop,
a real SMTP relay (aiosmtpd: STARTTLS on a self-signed certificate trusted via SMTP_CA_FILE,
AUTH) and the fake Resend. What a user checks: which provider sent each email, that nothing
went out twice, that an email through SMTP is `sent` without waiting for delivery events.
"""

from __future__ import annotations

import email
import email.message
import email.policy
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import Client, WorkflowExecutionStatus

from activities import errors
from config import Settings
from infra.temporal_client import connect
from testkit.fake_resend import FakeResendServer, Fault
from testkit.polling import eventually
from testkit.procs import free_port
from testkit.smtp_server import SmtpServer, smtp_server
from tests.helpers import INVITE, link_token, wait_for_status
from worker import build_runtime, build_transport, build_workers

EMAIL = {"to": "ann@example.com", "subject": "Hi", "text": "hello"}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """This module checks how one send moves between providers within its attempts: each
    send is its own provider call (`COALESCE_SHARDS=0`) unless a test says otherwise."""
    return settings.model_copy(update={"coalesce_shards": 0})


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[SmtpServer]:
    with smtp_server(tmp_path) as server:
        yield server


@asynccontextmanager
async def worker_with(
    client: Client, settings: Settings, relay: SmtpServer, providers: str, **updates: Any
) -> AsyncIterator[Settings]:
    """A real worker sending through `providers` (the relay as SMTP_URL, its CA trusted);
    with `worker_metrics_port` in `updates`, on a runtime exporting Prometheus metrics."""
    chosen = settings.model_copy(
        update={
            "providers": providers,
            "smtp_url": SecretStr(relay.url()),
            "smtp_ca_file": relay.ca_file,
            "smtp_timeout_seconds": 5.0,
            "worker_metrics_host": "127.0.0.1",
            **updates,
        }
    )
    if "worker_metrics_port" in updates:
        client = await connect(chosen, runtime=build_runtime(chosen))
    async with httpx.AsyncClient(
        base_url=chosen.resend_api_url, timeout=chosen.resend_timeout_seconds
    ) as http:
        workflows, sends = build_workers(client, chosen, build_transport(chosen, http))
        async with workflows, sends:
            yield chosen


@dataclass
class Env:
    """One test's API, Temporal client, settings, SMTP relay and fake Resend."""

    api: httpx.AsyncClient
    client: Client
    settings: Settings
    relay: SmtpServer
    fake: FakeResendServer

    def worker(self, providers: str, **updates: Any) -> AbstractAsyncContextManager[Settings]:
        return worker_with(self.client, self.settings, self.relay, providers, **updates)

    async def send_until(self, fault: Fault) -> str:
        """Send an email; once Resend answered it with `fault`, Resend stops listening."""
        self.fake.fake.enqueue_faults([fault])
        body = (await self.api.post("/v1/emails", json=EMAIL)).json()
        status = fault.status
        await eventually(
            lambda: self.fake.fake.requests_by_status.get(status, 0) >= 1, what=f"the {status}"
        )
        self.fake.stop()
        return str(body["id"])


@pytest.fixture
def env(
    api: httpx.AsyncClient,
    client: Client,
    settings: Settings,
    relay: SmtpServer,
    fake_resend: FakeResendServer,
) -> Env:
    return Env(api, client, settings, relay, fake_resend)


async def details_of(client: Client, workflow_id: str) -> str:
    """The workflow's current details as the Web UI shows them."""
    handle = client.get_workflow_handle(workflow_id)
    metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    return str(metadata.current_details)


def text_of(content: Any) -> str:
    """The text part of a message the relay received."""
    assert isinstance(content, bytes)
    mime = email.message_from_bytes(content, policy=email.policy.default)
    assert isinstance(mime, email.message.EmailMessage)
    body = mime.get_body(("plain",))
    assert body is not None
    return str(body.get_content())


def closed_port_url() -> str:
    return f"http://127.0.0.1:{free_port()}"  # nothing listens: connections are refused


async def test_email_through_smtp_alone_is_sent_without_waiting_for_events(
    api: httpx.AsyncClient, client: Client, settings: Settings, relay: SmtpServer
) -> None:
    async with worker_with(client, settings, relay, "smtp"):
        body = (await api.post("/v1/emails", json=EMAIL)).json()
        handle = client.get_workflow_handle(body["workflow_id"])
        # The workflow ends once the relay took it: SMTP reports no delivery events.
        result = await handle.result(rpc_timeout=None)
    assert result["status"] == "sent"
    status = (await api.get(f"/v1/emails/{body['id']}")).json()
    assert (status["status"], status["provider"], status["transport"]) == ("sent", "smtp", "smtp")
    assert status["failover_from"] is None and status["attempt_count"] == 1
    [envelope] = relay.relay.received
    assert envelope.rcpt_tos == ["ann@example.com"]
    assert isinstance(envelope.content, bytes)
    mime = email.message_from_bytes(envelope.content, policy=email.policy.default)
    assert mime["Message-ID"] == status["provider_message_id"]


async def test_invite_through_smtp_alone_is_sent_with_its_token_and_waits_for_no_events(
    api: httpx.AsyncClient, client: Client, settings: Settings, relay: SmtpServer
) -> None:
    async with worker_with(client, settings, relay, "smtp"):
        body = (await api.post("/v1/invites", json=INVITE)).json()
        status = await wait_for_status(api, body["invite_id"], "sent")
        details = await details_of(client, body["workflow_id"])
        [envelope] = relay.relay.received
        token = link_token(text_of(envelope.content))
        # The invite's life goes on (accept, expiry), but not a wait for delivery events.
        accepted = await api.post(f"/v1/invites/{body['invite_id']}/accept", json={"token": token})
    assert status["provider"] == "smtp" and status["attempt_count"] == 1
    assert "listening for delivery events" not in details and "transport `smtp`" in details
    assert accepted.status_code == 200, accepted.text


async def test_batch_through_smtp_alone_sends_each_email_and_waits_for_no_events(
    env: Env,
) -> None:
    emails = [{**EMAIL, "to": f"user{i}@example.com"} for i in range(3)]
    async with env.worker("smtp"):
        body = (await env.api.post("/v1/emails/batch", json={"emails": emails})).json()
        result = await env.client.get_workflow_handle(body["workflow_id"]).result(rpc_timeout=None)
    assert result["status"] == "sent" and result["transport"] == "smtp"
    assert [item["status"] for item in result["items"]] == ["sent"] * 3
    assert sorted(env.relay.relay.recipients) == [e["to"] for e in emails]


async def test_resend_500_is_retried_on_resend_never_through_smtp(shards: int, env: Env) -> None:
    """Alone or coalesced, the email records that Resend may have taken it."""
    env.fake.fake.enqueue_faults([Fault(status=500), Fault(status=500)])
    async with env.worker("resend,smtp"):
        body = (await env.api.post("/v1/emails", json=EMAIL)).json()
        status = await wait_for_status(env.api, body["id"], "sent")
    assert [a["provider"] for a in status["attempts"]] == ["resend"] * 3
    assert [a["http_status"] for a in status["attempts"]] == [500, 500, 200]
    assert status["provider"] == "resend" and status["failover_from"] is None
    assert status["may_have_been_taken_by"] == ["resend"]
    assert env.fake.fake.delivered_count == 1 and env.relay.relay.received == []


async def test_resend_refusing_connections_sends_through_smtp_once_and_says_why(
    shards: int, api: httpx.AsyncClient, client: Client, settings: Settings, relay: SmtpServer
) -> None:
    async with worker_with(
        client, settings, relay, "resend,smtp", resend_api_url=closed_port_url()
    ):
        body = (await api.post("/v1/emails", json=EMAIL)).json()
        result = await client.get_workflow_handle(body["workflow_id"]).result(rpc_timeout=None)
        details = await details_of(client, body["workflow_id"])
    assert result["status"] == "sent"
    status = (await api.get(f"/v1/emails/{body['id']}")).json()
    assert status["provider"] == "smtp" and status["failover_from"] == "resend"
    assert status["failover_reason"] == errors.PROVIDER_UNREACHABLE
    # Coalesced, its call's one refused batch attempt comes first: a batch call never fails
    # over, so the call hands the email back to go alone (`errors.SEND_ALONE`).
    *refused, attempt = status["attempts"]
    assert [(a["provider"], a["error_type"]) for a in refused] == (
        [("resend", errors.SEND_ALONE)] if settings.coalesce_shards else []
    )
    assert (attempt["provider"], attempt["failover_from"]) == ("smtp", "resend")
    timeline = (await api.get(f"/v1/emails/{body['id']}/events")).json()["events"]
    [sent] = [event for event in timeline if event["type"] == "sent"]
    assert sent["provider"] == "smtp" and sent["failover_reason"] == errors.PROVIDER_UNREACHABLE
    assert "moved from `resend`: `ProviderUnreachable`" in details
    assert len(relay.relay.received) == 1


async def test_smtp_connection_lost_after_data_ends_undetermined_and_is_not_resent(
    api: httpx.AsyncClient, client: Client, settings: Settings, relay: SmtpServer
) -> None:
    relay.relay.drop_after_data = True
    async with worker_with(client, settings, relay, "smtp"):
        body = (await api.post("/v1/emails", json=EMAIL)).json()
        handle = client.get_workflow_handle(body["workflow_id"])
        await eventually(lambda: _closed(handle), timeout=15, what="the send's workflow to end")
    status = (await api.get(f"/v1/emails/{body['id']}")).json()
    assert status["status"] == "undetermined" and status["attempt_count"] == 1
    assert status["last_error"]["type"] == errors.NETWORK_ERROR
    assert status["may_have_been_taken_by"] == ["smtp"]
    # The relay got it once; the engine never sent it again (its workflow has ended).
    assert len(relay.relay.received) == 1


async def test_attempt_timing_out_while_smtp_takes_the_message_ends_undetermined_not_resent(
    env: Env,
) -> None:
    # The relay takes the message but answers after the attempt's timeout: the activity's
    # heartbeat before DATA tells the engine that SMTP had it, so there is no retry.
    env.relay.relay.data_delay = 4.0
    env.settings.send_attempt_timeout_seconds = 1.5  # the API puts it in the send's policy
    async with env.worker("smtp", smtp_timeout_seconds=10.0):
        body = (await env.api.post("/v1/emails", json=EMAIL)).json()
        handle = env.client.get_workflow_handle(body["workflow_id"])
        await eventually(lambda: _closed(handle), timeout=20, what="the send's workflow to end")
    status = (await env.api.get(f"/v1/emails/{body['id']}")).json()
    assert status["status"] == "undetermined" and status["attempt_count"] == 1
    [attempt] = status["attempts"]
    assert (attempt["outcome"], attempt["provider"]) == ("timeout", "smtp")
    assert status["may_have_been_taken_by"] == ["smtp"]
    assert len(env.relay.relay.received) == 1


async def _closed(handle: Any) -> bool:
    return bool((await handle.describe()).status != WorkflowExecutionStatus.RUNNING)


async def test_after_an_ambiguous_resend_answer_later_attempts_never_move_to_smtp(
    env: Env,
) -> None:
    # A 500 (Resend may have taken it), then Resend stops listening: the engine tells every
    # later attempt that Resend may hold the email, so it is never sent through SMTP.
    async with env.worker("resend,smtp"):
        email_id = await env.send_until(Fault(status=500))

        async def refused_twice() -> dict[str, Any] | None:
            status: dict[str, Any] = (await env.api.get(f"/v1/emails/{email_id}")).json()
            unreachable = [
                a for a in status["attempts"] if a["error_type"] == errors.PROVIDER_UNREACHABLE
            ]
            return status if len(unreachable) >= 2 else None

        status = await eventually(refused_twice, what="two refused attempts after the 500")
        await env.client.get_workflow_handle(status["workflow_id"]).terminate("test over")
    assert status["may_have_been_taken_by"] == ["resend"]
    assert {a["provider"] for a in status["attempts"]} == {"resend"}
    assert env.relay.relay.received == []


async def test_after_a_definite_refusal_a_later_attempt_may_move_to_smtp(env: Env) -> None:
    # A 429 proves Resend did not take it (not moved: waiting is the answer); then Resend
    # stops listening. The engine tells attempt 2 that no provider may hold the email, so
    # that attempt moves to SMTP.
    async with env.worker("resend,smtp"):
        email_id = await env.send_until(Fault(status=429, retry_after=1))
        status = await wait_for_status(env.api, email_id, "sent")
    assert [a["provider"] for a in status["attempts"]] == ["resend", "smtp"]
    assert status["attempts"][1]["failover_from"] == "resend"
    assert status["may_have_been_taken_by"] == [] and status["failover_from"] == "resend"
    assert env.fake.fake.delivered_count == 0 and len(env.relay.relay.received) == 1


def sample(text: str, name: str, **labels: str) -> float:
    """The sum of a metric's samples with these labels in a Prometheus scrape."""
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items())
    )


async def test_metrics_count_attempts_outcomes_and_failovers_per_provider(env: Env) -> None:
    port = free_port()
    scrape_url = f"http://127.0.0.1:{port}/metrics"
    async with (
        env.worker("resend,smtp", resend_api_url=closed_port_url(), worker_metrics_port=port),
        httpx.AsyncClient() as scraper,
    ):
        body = (await env.api.post("/v1/emails", json=EMAIL)).json()
        await wait_for_status(env.api, body["id"], "sent")

        async def scraped() -> str | None:
            text = (await scraper.get(scrape_url)).text
            return text if sample(text, "email_sends", provider="smtp") >= 1 else None

        text = await eventually(scraped, what="email_sends{provider=smtp}")
    unreachable = {"transport": "resend", "outcome": errors.PROVIDER_UNREACHABLE}
    assert sample(text, "email_send_attempts", **unreachable) == 1
    assert sample(text, "email_send_attempts", transport="smtp", outcome="accepted") == 1
    assert sample(text, "email_provider_latency_count", transport="smtp") == 1
    moved = {"from": "resend", "to": "smtp", "reason": errors.PROVIDER_UNREACHABLE}
    assert sample(text, "email_failovers", **moved) == 1
    assert sample(text, "email_sends", outcome="sent", provider="smtp") == 1
