"""Bounded history under a long provider outage, on Temporal's time-skipping test server.

A whole send window (23 h) of provider trouble runs in seconds: the test server skips the
timers between attempts. The provider is an in-process transport whose answers follow the
(skipped) clock of the attempts, so "down for 22 h 50 min" means what it says. Every run
of the workflow is read back from the server and measured: events and bytes.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest
from pydantic import SecretStr
from temporalio import activity
from temporalio.client import Client, WorkflowFailureError
from temporalio.converter import value_to_type
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from activities import errors
from activities.delivery_contract import SendKind, batch_sha256, message_sha256
from activities.transports.base import ProviderFailure, SentBatch, SentEmail
from activities.transports.resend import CAPABILITIES as RESEND_CAPABILITIES
from activities.types import BatchItemOutcome, EmailMessage, EmailTag
from config import Settings
from infra.temporal_client import data_converter
from testkit.dev_server import start_time_skipping
from testkit.keys import CODEC_KEYS
from testkit.polling import eventually
from worker import build_workers
from workflows.batch_types import BatchItemInput, BatchStatusResult, SendBatchInput
from workflows.send_batch import SendBatch
from workflows.send_email import SendEmail
from workflows.status import SendStatus
from workflows.types import (
    DELIVERY_EVENT_SIGNAL,
    DeliveryEventInput,
    DeliveryPolicy,
    EmailStatusResult,
    InviteInput,
    InviteState,
    SendEmailInput,
)

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
    capabilities = RESEND_CAPABILITIES  # deduplicates by key, reports delivery events
    requests: list[tuple[str, timedelta]] = field(default_factory=list)
    messages: set[str] = field(default_factory=set)
    deliveries: dict[str, str] = field(default_factory=dict)
    batches: dict[str, list[str]] = field(default_factory=dict)
    first: datetime | None = None

    async def send(self, message: EmailMessage, idempotency_key: str) -> SentEmail:
        now = activity.info().current_attempt_scheduled_time
        self.first = self.first or now
        elapsed = now - self.first
        self.requests.append((idempotency_key, elapsed))
        self.messages.add(message_sha256(message))
        failure = self.answer(elapsed)
        if failure is not None:
            raise failure
        email_id = self.deliveries.setdefault(idempotency_key, f"re-{uuid.uuid4()}")
        return SentEmail(provider_message_id=email_id, http_status=200)

    async def send_batch(self, messages: list[EmailMessage], idempotency_key: str) -> SentBatch:
        now = activity.info().current_attempt_scheduled_time
        self.first = self.first or now
        elapsed = now - self.first
        self.requests.append((idempotency_key, elapsed))
        self.messages.add(batch_sha256(messages))
        failure = self.answer(elapsed)
        if failure is not None:
            raise failure
        ids = self.batches.setdefault(idempotency_key, [f"re-{uuid.uuid4()}" for _ in messages])
        return SentBatch([BatchItemOutcome(provider_message_id=i) for i in ids], 200)


def rate_limited(retry_after: float = 1) -> ProviderFailure:
    return ProviderFailure(
        errors.RATE_LIMITED,
        "HTTP 429 rate_limit_exceeded",
        http_status=429,
        retry_after_seconds=retry_after,
    )


def server_error() -> ProviderFailure:
    return ProviderFailure(
        errors.PROVIDER_UNAVAILABLE, "HTTP 500 application_error", http_status=500
    )


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
    # No `accepted_at`: the window counts from the start on the server's (skipped) clock.
    data = SendEmailInput(email_id=email_id, message=message, policy=policy)
    return f"email-{key}", data


async def send(
    env: WorkflowEnvironment,
    transport: OutageTransport,
    data: SendEmailInput,
    workflow_id: str,
) -> tuple[EmailStatusResult, list[Run]]:
    """Run one send to its end on the skipping server: its final state (the result, or the
    state a failed send carries in its failure) and each of its runs, measured."""
    suffix = uuid.uuid4().hex[:8]
    settings = Settings(
        _env_file=None, task_queue=f"wf-{suffix}", send_task_queue=data.policy.send_task_queue
    )
    workflows, sends = build_workers(env.client, settings, transport)
    async with workflows, sends:
        handle = await env.client.start_workflow(
            SendEmailInput.WORKFLOW,
            data,
            id=workflow_id,
            task_queue=settings.task_queue,
            result_type=EmailStatusResult,
        )
        try:
            result: EmailStatusResult = await handle.result()
        except WorkflowFailureError as failure:
            assert isinstance(failure.cause, ApplicationError), failure.cause
            result = value_to_type(EmailStatusResult, failure.cause.details[0], [])
    runs = await runs_of(env.client, workflow_id, handle.first_execution_run_id or "")
    log.info(
        "%s: %d attempts, %d runs, events per run %s, bytes per run %s",
        result.status,
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

    assert result.status == SendStatus.SENT
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
    # No attempt later than the window after the email was due, the first attempt's time.
    assert result.first_attempt_at is not None and result.not_after is not None
    first = datetime.fromisoformat(result.first_attempt_at)
    window_end = datetime.fromisoformat(result.not_after)
    assert timedelta(hours=23) - timedelta(seconds=5) < window_end - first <= timedelta(hours=23)


def after(first: Answer, until: timedelta, then: Answer) -> Answer:
    return lambda elapsed: first(elapsed) if elapsed < until else then(elapsed)


def always(failure: Callable[[], ProviderFailure]) -> Answer:
    return lambda elapsed: failure()


def conflict() -> ProviderFailure:
    return ProviderFailure(
        errors.IDEMPOTENCY_CONFLICT, "HTTP 409 invalid_idempotent_request", http_status=409
    )


def rejected() -> ProviderFailure:
    return ProviderFailure(errors.REJECTED, "HTTP 422 invalid_from_address", http_status=422)


@pytest.mark.parametrize(
    ("answer", "status", "attempts"),
    [
        # Refused (429) until the window ends: provably never accepted.
        (always(lambda: rate_limited(60)), SendStatus.FAILED, (50, 70)),
        # One 500 (it may have gone through), then refusals: nobody can tell.
        (
            after(always(server_error), timedelta(seconds=1), always(lambda: rate_limited(60))),
            SendStatus.UNDETERMINED,
            (50, 70),
        ),
        # Same key, other payload: the provider had something under this key.
        (always(conflict), SendStatus.UNDETERMINED, (1, 1)),
        # Refused for good at the first attempt.
        (always(rejected), SendStatus.FAILED, (1, 1)),
    ],
    ids=["429-until-window-end", "500-then-429s", "409-invalid-idempotent-request", "422"],
)
async def test_unaccepted_send_ends_failed_only_when_the_provider_provably_refused_it(
    skipping_env: WorkflowEnvironment,
    answer: Answer,
    status: SendStatus,
    attempts: tuple[int, int],
) -> None:
    one_hour = dataclasses.replace(policy(), window_seconds=3600)
    transport = OutageTransport(answer)
    workflow_id, data = email_input(one_hour, text="hello")
    result, _ = await send(skipping_env, transport, data, workflow_id)

    assert result.status == status
    assert attempts[0] <= result.attempt_count == len(transport.requests) <= attempts[1]
    assert transport.deliveries == {}
    assert result.last_error is not None
    may_duplicate = "resubmitting it under a new Idempotency-Key may send it twice"
    assert (may_duplicate in result.last_error.message) == (status == SendStatus.UNDETERMINED)
    assert result.provider_may_have_accepted == (status == SendStatus.UNDETERMINED)
    assert transport.requests[-1][1] < timedelta(hours=1)


async def test_webhook_flood_after_the_send_continues_as_new_and_keeps_counting(
    skipping_env: WorkflowEnvironment,
) -> None:
    transport = OutageTransport(lambda _: None)
    tracked = dataclasses.replace(policy(), delivery_wait_seconds=72 * 3600)
    workflow_id, data = email_input(tracked, text="hello")
    suffix = uuid.uuid4().hex[:8]
    settings = Settings(
        _env_file=None, task_queue=f"wf-{suffix}", send_task_queue=tracked.send_task_queue
    )
    workflows, sends = build_workers(skipping_env.client, settings, transport)
    async with workflows, sends:
        handle = await skipping_env.client.start_workflow(
            SendEmail.run, data, id=workflow_id, task_queue=settings.task_queue
        )
        await eventually(lambda: len(transport.deliveries) == 1, what="sent")
        first_run = handle.first_execution_run_id
        latest = skipping_env.client.get_workflow_handle(workflow_id, result_type=EmailStatusResult)
        events = 0
        # Past the run's event budget; a flood that never pauses would keep failing the
        # workflow task that continues as new (each new signal must be handled first).
        while (await latest.describe()).history_length < 4_200:
            for _ in range(100):
                events += 1
                await latest.signal(
                    DELIVERY_EVENT_SIGNAL,
                    DeliveryEventInput(f"msg_{events}", "email.delivery_delayed"),
                )

        async def continued() -> bool:
            return (await latest.describe()).run_id != first_run

        await eventually(continued, what="continued as new")
        await latest.signal(DELIVERY_EVENT_SIGNAL, DeliveryEventInput("msg_end", "email.bounced"))
        # A repeat of a recent event id (delivered again by the provider) is not counted.
        await latest.signal(DELIVERY_EVENT_SIGNAL, DeliveryEventInput("msg_end", "email.bounced"))
        result: EmailStatusResult = await latest.result()
    runs = await runs_of(skipping_env.client, workflow_id, first_run or "")
    log.info("flood of %d events: events per run %s", events + 1, [r.events for r in runs])

    assert result.status == SendStatus.BOUNCED and len(runs) >= 2
    assert max(r.events for r in runs) <= MAX_RUN_EVENTS
    assert result.delivery_event_count == events + 1
    assert result.delivery_events_omitted == events + 1 - len(result.delivery_events)
    assert len(result.delivery_events) == 25
    assert result.delivery_events[0].event_id == "msg_1"
    assert result.delivery_events[-1].event_id == "msg_end"
    assert result.sent_at is not None and result.attempt_count == 1


async def test_a_repeat_after_a_flood_of_150_distinct_events_counts_once(
    skipping_env: WorkflowEnvironment,
) -> None:
    """Red team: repeats were recognised only among the last 100 event ids."""
    transport = OutageTransport(lambda _: None)
    tracked = dataclasses.replace(policy(), delivery_wait_seconds=72 * 3600)
    workflow_id, data = email_input(tracked, text="hello")
    suffix = uuid.uuid4().hex[:8]
    settings = Settings(
        _env_file=None, task_queue=f"wf-{suffix}", send_task_queue=tracked.send_task_queue
    )
    workflows, sends = build_workers(skipping_env.client, settings, transport)
    async with workflows, sends:
        handle = await skipping_env.client.start_workflow(
            SendEmail.run, data, id=workflow_id, task_queue=settings.task_queue
        )
        await eventually(lambda: len(transport.deliveries) == 1, what="sent")
        for n in range(160):
            at = f"2026-01-01T00:{n // 60:02d}:{n % 60:02d}Z"
            await handle.signal(
                DELIVERY_EVENT_SIGNAL,
                DeliveryEventInput(f"msg_{n}", "email.delivery_delayed", occurred_at=at),
            )
        repeat = DeliveryEventInput("msg_3", "email.delivery_delayed", "2026-01-01T00:00:03Z")
        await handle.signal(DELIVERY_EVENT_SIGNAL, repeat)
        await handle.signal(DELIVERY_EVENT_SIGNAL, DeliveryEventInput("msg_end", "email.bounced"))
        result: EmailStatusResult = await handle.result()
    assert result.status == SendStatus.BOUNCED
    assert result.delivery_event_count == 161


async def test_invite_life_that_continues_as_new_sends_each_email_once_rendered_once(
    skipping_env: WorkflowEnvironment,
) -> None:
    # The invitation meets 8 minutes of 429s (its run fills up and the invite continues as
    # new mid-retries), then goes out; the reminder a day later; the invite expires at 3.
    transport = OutageTransport(after(always(rate_limited), timedelta(minutes=8), lambda _: None))
    invite_id = f"inv_{uuid.uuid4().hex}"
    workflow_id = "invite-" + invite_id.removeprefix("inv_")
    data = InviteInput(
        invite_id=invite_id,
        to="ann@example.com",
        sender="Acme <team@acme.test>",
        tenant_name="Acme",
        inviter_name="Bob",
        accept_url="https://app.example.test/accept?invite=x",
        policy=policy(),
        expires_in_seconds=3 * 86400,
        remind_after_seconds=86400,
    )
    suffix = uuid.uuid4().hex[:8]
    settings = Settings(
        _env_file=None, task_queue=f"wf-{suffix}", send_task_queue=data.policy.send_task_queue
    )
    workflows, sends = build_workers(skipping_env.client, settings, transport)
    async with workflows, sends:
        handle = await skipping_env.client.start_workflow(
            InviteInput.WORKFLOW,
            data,
            id=workflow_id,
            task_queue=settings.task_queue,
            result_type=InviteState,
        )
        result: InviteState = await handle.result()
    runs = await runs_of(skipping_env.client, workflow_id, handle.first_execution_run_id or "")
    log.info("invite: events per run %s", [r.events for r in runs])

    assert result.status == "expired" and len(runs) >= 2
    assert max(r.events for r in runs) <= MAX_RUN_EVENTS
    assert set(transport.deliveries) == {f"{workflow_id}/send", f"{workflow_id}/reminder"}
    assert len(transport.messages) == 2  # the invitation and the reminder, each the same bytes
    assert result.invitation is not None and result.invitation.status == SendStatus.SENT
    assert result.invitation.attempt_count > 400 and result.invitation.runs == len(runs)
    assert result.reminder is not None and result.reminder.status == SendStatus.SENT
    renders = 0
    for run in runs:
        history = await skipping_env.client.get_workflow_handle(
            workflow_id, run_id=run.run_id
        ).fetch_history()
        renders += sum(
            1
            for e in history.events
            if e.HasField("marker_recorded_event_attributes")
            and e.marker_recorded_event_attributes.marker_name == "core_local_activity"
            # Not the hand-over of app webhook events (`emit_app_event`), also local.
            and b"emit_app_event"
            not in e.marker_recorded_event_attributes.details["data"].SerializeToString()
        )
    assert renders == 1


def batch_input(
    policy: DeliveryPolicy, n: int = 100, text: str = "hello"
) -> tuple[str, SendBatchInput]:
    key = uuid.uuid4().hex
    items = [
        BatchItemInput(
            email_id=f"em_{key}_{i}",
            message=EmailMessage(
                sender="Acme <team@acme.test>",
                to=[f"user{i}@example.com"],
                subject="Your report",
                text=text,
                tags=[EmailTag("kind", "email"), EmailTag("email_id", f"em_{key}_{i}")],
            ),
        )
        for i in range(n)
    ]
    # No `accepted_at`: the window counts from the start on the server's (skipped) clock.
    return f"batch-{key}", SendBatchInput(f"bat_{key}", SendKind.EMAIL, items, policy=policy)


async def send_batch(
    env: WorkflowEnvironment, transport: OutageTransport, data: SendBatchInput, workflow_id: str
) -> tuple[BatchStatusResult, list[Run]]:
    """`send` for a batch: its final state and each of its runs, measured."""
    suffix = uuid.uuid4().hex[:8]
    settings = Settings(
        _env_file=None, task_queue=f"wf-{suffix}", send_task_queue=data.policy.send_task_queue
    )
    workflows, sends = build_workers(env.client, settings, transport)
    async with workflows, sends:
        handle = await env.client.start_workflow(
            SendBatch.run, data, id=workflow_id, task_queue=settings.task_queue
        )
        try:
            result = await handle.result()
        except WorkflowFailureError as failure:
            assert isinstance(failure.cause, ApplicationError), failure.cause
            result = value_to_type(BatchStatusResult, failure.cause.details[0], [])
    runs = await runs_of(env.client, workflow_id, handle.first_execution_run_id or "")
    log.info(
        "batch %s: %d attempts, %d runs, events per run %s, bytes per run %s",
        result.status,
        len(transport.requests),
        len(runs),
        [r.events for r in runs],
        [r.size for r in runs],
    )
    return result, runs


async def test_23h_outage_of_a_100_email_batch_sends_each_once_with_every_run_bounded(
    skipping_env: WorkflowEnvironment,
) -> None:
    # As for a single send: 429s for 10 minutes, then 5xx until 22 h 50 min, then recovery;
    # 100 emails of 4 KB each (~0.5 MB), which batches started before `batch-bounded-v1`
    # recorded again in every attempt's input (800+ attempts: ~400 MB of history).
    def answer(elapsed: timedelta) -> ProviderFailure | None:
        if elapsed < timedelta(minutes=10):
            return rate_limited()
        if elapsed < timedelta(hours=22, minutes=50):
            return server_error()
        return None

    transport = OutageTransport(answer)
    workflow_id, data = batch_input(policy(), text="x" * 4000)
    result, runs = await send_batch(skipping_env, transport, data, workflow_id)

    assert result.status == SendStatus.SENT
    assert [item.status for item in result.items] == [SendStatus.SENT] * 100
    key = f"{workflow_id}/send/0"
    assert list(transport.batches) == [key] and len(set(transport.batches[key])) == 100
    assert [item.provider_message_id for item in result.items] == transport.batches[key]
    assert {k for k, _ in transport.requests} == {key} and len(transport.messages) == 1
    assert result.attempt_count == len(transport.requests) > 800
    assert transport.requests[-1][1] >= timedelta(hours=22, minutes=50)
    assert len(runs) >= 2 and result.runs == len(runs)
    assert max(r.events for r in runs) <= MAX_RUN_EVENTS, runs
    assert max(r.size for r in runs) <= MAX_RUN_BYTES, runs
    assert len(result.attempts) < 30
    assert result.attempts_omitted == result.attempt_count - len(result.attempts)
    assert result.attempts[-1].outcome == "accepted"
    assert result.not_after is not None


@pytest.mark.parametrize(
    ("answer", "status", "attempts"),
    [
        # Refused (429) until the window ends: provably never accepted.
        (always(lambda: rate_limited(60)), SendStatus.FAILED, (50, 70)),
        # One 500 (the provider may have taken the call), then refusals: nobody can tell.
        (
            after(always(server_error), timedelta(seconds=1), always(lambda: rate_limited(60))),
            SendStatus.UNDETERMINED,
            (50, 70),
        ),
        # Same key, other payload: the provider had something under this key.
        (always(conflict), SendStatus.UNDETERMINED, (1, 1)),
        (always(rejected), SendStatus.FAILED, (1, 1)),
    ],
    ids=["429-until-window-end", "500-then-429s", "409-invalid-idempotent-request", "422"],
)
async def test_unaccepted_batch_ends_failed_only_when_the_provider_provably_refused_it(
    skipping_env: WorkflowEnvironment,
    answer: Answer,
    status: SendStatus,
    attempts: tuple[int, int],
) -> None:
    one_hour = dataclasses.replace(policy(), window_seconds=3600)
    transport = OutageTransport(answer)
    workflow_id, data = batch_input(one_hour, n=3)
    result, _ = await send_batch(skipping_env, transport, data, workflow_id)

    assert result.status == status
    assert [item.status for item in result.items] == [status] * 3
    assert attempts[0] <= result.attempt_count == len(transport.requests) <= attempts[1]
    assert transport.batches == {}
    assert result.last_error is not None
    may_duplicate = "resubmitting it under a new Idempotency-Key may send it twice"
    assert (may_duplicate in result.last_error.message) == (status == SendStatus.UNDETERMINED)
    assert result.provider_may_have_accepted == (status == SendStatus.UNDETERMINED)
    assert transport.requests[-1][1] < timedelta(hours=1)


async def test_webhook_flood_after_a_batch_continues_as_new_and_tracks_each_item(
    skipping_env: WorkflowEnvironment,
) -> None:
    transport = OutageTransport(lambda _: None)
    tracked = dataclasses.replace(policy(), delivery_wait_seconds=72 * 3600)
    workflow_id, data = batch_input(tracked, n=2)
    suffix = uuid.uuid4().hex[:8]
    settings = Settings(
        _env_file=None, task_queue=f"wf-{suffix}", send_task_queue=tracked.send_task_queue
    )
    workflows, sends = build_workers(skipping_env.client, settings, transport)
    first, second = (item.email_id for item in data.items)
    async with workflows, sends:
        handle = await skipping_env.client.start_workflow(
            SendBatch.run, data, id=workflow_id, task_queue=settings.task_queue
        )
        await eventually(lambda: len(transport.batches) == 1, what="sent")
        first_run = handle.first_execution_run_id
        latest = skipping_env.client.get_workflow_handle(workflow_id, result_type=BatchStatusResult)
        await latest.signal(
            DELIVERY_EVENT_SIGNAL,
            DeliveryEventInput("msg_done", "email.delivered", email_id=second),
        )
        events = 0
        while (await latest.describe()).history_length < 4_200:
            for _ in range(100):
                events += 1
                await latest.signal(
                    DELIVERY_EVENT_SIGNAL,
                    DeliveryEventInput(f"msg_{events}", "email.delivery_delayed", email_id=first),
                )

        async def continued() -> bool:
            return (await latest.describe()).run_id != first_run

        await eventually(continued, what="continued as new")
        # The second item's state came through the continue-as-new: delivered, then a
        # complaint (an ending); the first bounces.
        await latest.signal(
            DELIVERY_EVENT_SIGNAL,
            DeliveryEventInput("msg_complaint", "email.complained", email_id=second),
        )
        await latest.signal(
            DELIVERY_EVENT_SIGNAL, DeliveryEventInput("msg_end", "email.bounced", email_id=first)
        )
        result: BatchStatusResult = await latest.result()
    runs = await runs_of(skipping_env.client, workflow_id, first_run or "")
    log.info("batch flood of %d events: events per run %s", events + 1, [r.events for r in runs])

    assert len(runs) >= 2 and result.runs == len(runs)
    assert max(r.events for r in runs) <= MAX_RUN_EVENTS
    assert [item.status for item in result.items] == [SendStatus.BOUNCED, SendStatus.COMPLAINED]
    assert [e.event_id for e in result.items[1].delivery_events] == ["msg_done", "msg_complaint"]
    kept = result.items[0].delivery_events
    assert len(kept) == 25 and kept[0].event_id == "msg_1" and kept[-1].event_id == "msg_end"
    assert result.attempt_count == 1 and len(transport.requests) == 1
