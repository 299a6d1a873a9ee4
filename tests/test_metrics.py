"""Worker metrics: the SDK's and ours, exported for Prometheus on WORKER_METRICS_PORT."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import httpx
import pytest
from temporalio.client import Client

from config import Settings
from infra.temporal_client import connect
from testkit.fake_resend import FakeResendServer
from testkit.polling import eventually
from tests.helpers import INVITE, running_worker, wait_for_status
from worker import build_runtime


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
async def metrics_worker(settings: Settings) -> AsyncIterator[str]:
    """A worker on its own runtime with a Prometheus endpoint; yields the scrape URL."""
    settings.worker_metrics_host = "127.0.0.1"
    settings.worker_metrics_port = free_port()
    runtime = build_runtime(settings)
    assert runtime is not None
    client: Client = await connect(settings, runtime=runtime)
    async with running_worker(client, settings):
        yield f"http://127.0.0.1:{settings.worker_metrics_port}/metrics"


def sample(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def test_worker_metrics_move_when_an_email_is_sent(
    api: httpx.AsyncClient, metrics_worker: str, fake_resend: FakeResendServer
) -> None:
    async with httpx.AsyncClient() as scraper:
        before = (await scraper.get(metrics_worker)).text
        body = (await api.post("/v1/invites", json=INVITE)).json()
        await wait_for_status(api, body["invite_id"], "sent")

        async def scraped() -> str | None:
            text = (await scraper.get(metrics_worker)).text
            return text if sample(text, "email_sends", outcome="sent") >= 1 else None

        after = await eventually(scraped)
    assert sample(after, "email_send_attempts", outcome="accepted") > sample(
        before, "email_send_attempts", outcome="accepted"
    )
    assert sample(after, "email_provider_latency_count") >= 1
    assert "temporal_workflow_completed" in after or "temporal_request" in after


def test_second_worker_on_a_busy_metrics_port_runs_without_metrics(settings: Settings) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        taken = settings.model_copy(
            update={"worker_metrics_host": "127.0.0.1", "worker_metrics_port": port}
        )
        assert build_runtime(taken) is None
