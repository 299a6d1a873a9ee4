"""Bounded history under a long provider outage, on Temporal's time-skipping test server.

A whole send window (23 h) of provider trouble runs in seconds: the test server skips the
timers between attempts. The provider is an in-process transport whose answers follow the
(skipped) clock of the attempts, so "down for 22 h 50 min" means what it says. Every run
of the workflow is read back from the server and measured: events and bytes.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr
from temporalio import activity
from temporalio.client import Client, WorkflowFailureError
from temporalio.testing import WorkflowEnvironment

from activities import errors
from activities.transports.base import ProviderFailure, SentEmail
from activities.types import EmailMessage, EmailTag
from config import Settings
from infra.temporal_client import data_converter
from testkit.dev_server import start_time_skipping
from testkit.keys import CODEC_KEYS
from worker import build_workers
from workflows.send_email import SendEmail
from workflows.status import SendStatus
from workflows.types import DeliveryPolicy, EmailStatusResult, SendEmailInput

# The largest body we accept: 128 KiB of 4-byte characters (JSON escapes each as 12 bytes).
LARGEST_TEXT = "\U0001f600" * (128 * 1024 // 4)
# What each run must stay under (Temporal ends a workflow at 51,200 events or 50 MB).
MAX_RUN_EVENTS = 10_000
MAX_RUN_BYTES = 10 * 1024 * 1024

log = logging.getLogger("tests.bounded_history")

Answer = Callable[[timedelta], ProviderFailure | None]


@dataclass
class OutageTransport:
    """A provider whose answer depends on the time since the first attempt (skipped clock),
    and that deduplicates idempotency keys as Resend does: one delivery per key."""

    answer: Answer
    name: str = "outage"
    requests: list[tuple[str, timedelta]] = field(default_factory=list)
    deliveries: dict[str, str] = field(default_factory=dict)
    first: datetime | None = None

    async def send(self, message: EmailMessage, idempotency_key: str) -> SentEmail:
        now = activity.info().current_attempt_scheduled_time
        self.first = self.first or now
        elapsed = now - self.first
        self.requests.append((idempotency_key, elapsed))
        failure = self.answer(elapsed)
        if failure is not None:
            raise failure
        email_id = self.deliveries.setdefault(idempotency_key, f"re-{uuid.uuid4()}")
        return SentEmail(provider_message_id=email_id, http_status=200)


def rate_limited() -> ProviderFailure:
    return ProviderFailure(
        errors.RATE_LIMITED, "HTTP 429 rate_limit_exceeded", http_status=429, retry_after_seconds=1
    )


def server_error() -> ProviderFailure:
    return ProviderFailure(errors.PROVIDER_UNAVAILABLE, "HTTP 500 application_error", http_status=500)


@dataclass
class Run:
    run_id: str
    events: int
    size: int


@pytest.fixture(scope="module")
async def skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    converter = data_converter(Settings(_env_file=None, payload_codec_keys=SecretStr(CODEC_KEYS)))
    env = await start_time_skipping(converter)
    yield env
    await env.shutdown()


def email_input(policy: DeliveryPolicy, text: str = LARGEST_TEXT) -> tuple[str, SendEmailInput]:
    key = uuid.uuid4().hex
    email_id = f"em_{key}"
    message = EmailMessage(
        sender="Acme <team@acme.test>",
        to=["ann@example.com"],
        subject="Your report",
        text=text,
        tags=[EmailTag("kind", "email"), EmailTag("email_id", email_id)],
    )
    data = SendEmailInput(
        email_id=email_id,
        message=message,
        policy=policy,
        accepted_at=datetime.now(UTC).isoformat(),
    )
    return f"email-{key}", data


async def send(
    env: WorkflowEnvironment, transport: OutageTransport, data: SendEmailInput, workflow_id: str
) -> tuple[EmailStatusResult | None, list[Run]]:
    """Run one send to its end on the skipping server; its result (None if it failed) and
    each of its runs, measured."""
    suffix = uuid.uuid4().hex[:8]
    settings = Settings(
        _env_file=None, task_queue=f"wf-{suffix}", send_task_queue=data.policy.send_task_queue
    )
    workflows, sends = build_workers(env.client, settings, transport)
    async with workflows, sends:
        handle = await env.client.start_workflow(
            SendEmail.run, data, id=workflow_id, task_queue=settings.task_queue
        )
        try:
            result: EmailStatusResult | None = await handle.result()
        except WorkflowFailureError:
            result = None
    runs = await runs_of(env.client, workflow_id, handle.first_execution_run_id or "")
    log.info(
        "%s: %d attempts, %d runs, events per run %s, bytes per run %s",
        result.status if result else "failed",
        len(transport.requests),
        len(runs),
        [r.events for r in runs],
        [r.size for r in runs],
    )
    return result, runs


async def runs_of(client: Client, workflow_id: str, run_id: str) -> list[Run]:
    """Every run of the workflow, first to last, with its history's event count and size."""
    runs = []
    while run_id:
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        runs.append(Run(run_id, len(history.events), sum(e.ByteSize() for e in history.events)))
        last = history.events[-1]
        run_id = (
            last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
            if last.HasField("workflow_execution_continued_as_new_event_attributes")
            else ""
        )
    return runs


def policy() -> DeliveryPolicy:
    return DeliveryPolicy(send_task_queue=f"send-{uuid.uuid4().hex[:8]}", delivery_wait_seconds=0)


async def test_23h_outage_of_429s_then_500s_sends_once_with_every_run_bounded(
    skipping_env: WorkflowEnvironment,
) -> None:
    # 429 `retry-after: 1` for the first 10 minutes (an attempt a second), then 5xx until
    # 22 h 50 min after the first attempt (backoff up to 5 min), then the provider recovers.
    def answer(elapsed: timedelta) -> ProviderFailure | None:
        if elapsed < timedelta(minutes=10):
            return rate_limited()
        if elapsed < timedelta(hours=22, minutes=50):
            return server_error()
        return None

    transport = OutageTransport(answer)
    workflow_id, data = email_input(policy())
    result, runs = await send(skipping_env, transport, data, workflow_id)

    assert result is not None and result.status == SendStatus.SENT
    assert len(transport.deliveries) == 1
    assert result.attempt_count == len(transport.requests) > 800
    assert {key for key, _ in transport.requests} == {f"{workflow_id}/send"}
    assert transport.requests[-1][1] >= timedelta(hours=22, minutes=50)
    # The history of every run stays far below Temporal's limits.
    assert len(runs) >= 3 and result.runs == len(runs)
    assert max(r.events for r in runs) <= MAX_RUN_EVENTS, runs
    assert max(r.size for r in runs) <= MAX_RUN_BYTES, runs
    # The status keeps the first and the latest attempts, and counts all of them.
    assert len(result.attempts) < 30
    assert result.attempts_omitted == result.attempt_count - len(result.attempts)
    assert [a.attempt for a in result.attempts[:3]] == [1, 2, 3]
    assert result.attempts[-1].outcome == "accepted"
    assert result.attempts[-1].attempt == result.attempt_count
    assert result.first_attempt_at is not None and result.not_after is not None
    window = datetime.fromisoformat(result.not_after) - datetime.fromisoformat(
        result.first_attempt_at
    )
    assert window == timedelta(hours=23)
