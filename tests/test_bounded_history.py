"""Bounded history under a long provider outage, on Temporal's time-skipping test server.

A whole send window (23 h) of provider trouble runs in seconds: the test server skips the
timers between attempts. The provider is an in-process transport whose answers follow the
(skipped) clock of the attempts, so "down for 22 h 50 min" means what it says. Every run
of the workflow is read back from the server and measured: events and bytes.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

import pytest
from temporalio import activity
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.converter import value_to_type
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from activities import errors
from activities.delivery_contract import SendKind, batch_sha256, message_sha256
from activities.transports.base import ProviderFailure, SentBatch, SentEmail
from activities.transports.resend import CAPABILITIES as RESEND_CAPABILITIES
from activities.transports.resend import resend_payload
from activities.types import BatchItemOutcome, EmailMessage, EmailTag, RenderInviteInput
from config import Settings
from testkit.dev_server import start_time_skipping
from testkit.polling import eventually
from testkit.runs import each_run
from testkit.settings import encrypting_converter
from worker import build_workers
from workflows.batch_types import BatchItemInput, BatchStatusResult, SendBatchInput
from workflows.invite_batch_types import InviteBatchInput, InviteBatchResult
from workflows.status import SendStatus
from workflows.types import (
    ACCEPT_UPDATE,
    DELIVERY_EVENT_SIGNAL,
    AcceptInput,
    AcceptResult,
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
# The largest batch the API accepts: 100 emails of HTML in Cyrillic, a 512 KiB request.
LARGEST_BATCH_HTML = "<p>" + "Ж" * 2_500 + "</p>"
# Temporal refuses a payload over 2 MiB; a run's input stays under half of that.
MAX_RUN_INPUT_BYTES = 1024 * 1024

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
        self._attempt(idempotency_key, message_sha256(message))
        email_id = self.deliveries.setdefault(idempotency_key, f"re-{uuid.uuid4()}")
        return SentEmail(provider_message_id=email_id, http_status=200)

    async def send_batch(self, messages: list[EmailMessage], idempotency_key: str) -> SentBatch:
        self._attempt(idempotency_key, batch_sha256(messages))
        ids = self.batches.setdefault(idempotency_key, [f"re-{uuid.uuid4()}" for _ in messages])
        return SentBatch([BatchItemOutcome(provider_message_id=i) for i in ids], 200)

    def _attempt(self, idempotency_key: str, message_sha: str) -> None:
        """Record one request (key, time since the first, message); raise the answer's failure."""
        now = activity.info().current_attempt_scheduled_time
        self.first = self.first or now
        elapsed = now - self.first
        self.requests.append((idempotency_key, elapsed))
        self.messages.add(message_sha)
        failure = self.answer(elapsed)
        if failure is not None:
            raise failure


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
    # The run's input: what the run before it carried (its first event's payload).
    input_size: int


@pytest.fixture(scope="module")
async def skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await start_time_skipping(encrypting_converter())
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


@asynccontextmanager
async def workers(
    env: WorkflowEnvironment, transport: OutageTransport, policy: DeliveryPolicy
) -> AsyncIterator[str]:
    """Our workers against `transport` on their own queues; yields the workflow task queue."""
    settings = Settings(
        _env_file=None,
        task_queue=f"wf-{uuid.uuid4().hex[:8]}",
        send_task_queue=policy.send_task_queue,
    )
    workflows, sends = build_workers(env.client, settings, transport)
    async with workflows, sends:
        yield settings.task_queue


S = TypeVar("S", EmailStatusResult, BatchStatusResult)


async def run_to_end(
    env: WorkflowEnvironment,
    transport: OutageTransport,
    data: SendEmailInput | SendBatchInput,
    workflow_id: str,
    result_type: type[S],
) -> tuple[S, list[Run]]:
    """Run one send or batch to its end on the skipping server: its final state (the result,
    or the state a failed send carries in its failure) and each of its runs, measured."""
    async with workers(env, transport, data.policy) as task_queue:
        handle = await env.client.start_workflow(
            data.WORKFLOW, data, id=workflow_id, task_queue=task_queue, result_type=result_type
        )
        try:
            result: S = await handle.result()
        except WorkflowFailureError as failure:
            assert isinstance(failure.cause, ApplicationError), failure.cause
            result = value_to_type(result_type, failure.cause.details[0], [])
    runs = await runs_of(env.client, workflow_id, handle.first_execution_run_id or "")
    log.info(
        "%s %s: %d attempts, %d runs, events per run %s, bytes per run %s, input bytes %s",
        data.WORKFLOW,
        result.status,
        len(transport.requests),
        len(runs),
        [r.events for r in runs],
        [r.size for r in runs],
        [r.input_size for r in runs],
    )
    return result, runs


async def send(
    env: WorkflowEnvironment, transport: OutageTransport, data: SendEmailInput, workflow_id: str
) -> tuple[EmailStatusResult, list[Run]]:
    return await run_to_end(env, transport, data, workflow_id, EmailStatusResult)


async def send_batch(
    env: WorkflowEnvironment, transport: OutageTransport, data: SendBatchInput, workflow_id: str
) -> tuple[BatchStatusResult, list[Run]]:
    return await run_to_end(env, transport, data, workflow_id, BatchStatusResult)


def tracked_policy() -> DeliveryPolicy:
    """Our test policy, with a 72 h wait for the provider's delivery events after the send."""
    return dataclasses.replace(policy(), delivery_wait_seconds=72 * 3600)


@asynccontextmanager
async def sent_and_tracking(
    env: WorkflowEnvironment, transport: OutageTransport, workflow_id: str,
    data: SendEmailInput | SendBatchInput, result_type: type[S],
) -> AsyncIterator[tuple[WorkflowHandle[Any, S], str]]:  # fmt: skip
    """Start `data` on our workers; once the provider has it, yield a handle on the latest
    run (signals and the result follow continue-as-new) and the first run's id."""
    async with workers(env, transport, data.policy) as task_queue:
        handle = await env.client.start_workflow(
            data.WORKFLOW, data, id=workflow_id, task_queue=task_queue, result_type=result_type
        )
        await eventually(lambda: len(transport.deliveries | transport.batches) == 1, what="sent")
        latest = env.client.get_workflow_handle(workflow_id, result_type=result_type)
        yield latest, handle.first_execution_run_id or ""


@asynccontextmanager
async def email_sent_and_tracking(
    env: WorkflowEnvironment,
) -> AsyncIterator[tuple[WorkflowHandle[Any, EmailStatusResult], str]]:
    """`sent_and_tracking` of a small email that the provider accepts at once."""
    workflow_id, data = email_input(tracked_policy(), text="hello")
    transport = OutageTransport(lambda _: None)
    async with sent_and_tracking(env, transport, workflow_id, data, EmailStatusResult) as started:
        yield started


async def flood(
    handle: WorkflowHandle[Any, Any], event: Callable[[int], DeliveryEventInput]
) -> int:
    """Signal delivery events past a run's event budget until the workflow continues as new
    (a flood that never pauses would keep failing the workflow task that continues as new:
    each new signal must be handled first); the number of events sent."""
    first_run = (await handle.describe()).run_id
    events = 0
    while (await handle.describe()).history_length < 4_200:
        for _ in range(100):
            events += 1
            await handle.signal(DELIVERY_EVENT_SIGNAL, event(events))

    async def continued() -> bool:
        return (await handle.describe()).run_id != first_run

    await eventually(continued, what="continued as new")
    return events


async def runs_of(client: Client, workflow_id: str, run_id: str) -> list[Run]:
    """Every run of the workflow, first to last, with its history's event count and size."""
    runs = []
    async for run, history in each_run(client, workflow_id, run_id):
        started = history.events[0].workflow_execution_started_event_attributes
        size = sum(e.ByteSize() for e in history.events)
        runs.append(Run(run, len(history.events), size, started.input.ByteSize()))
    return runs


async def local_activities(client: Client, workflow_id: str, runs: list[Run], name: bytes) -> int:
    """How many local activities whose recorded data names `name` the runs hold (e.g. the
    render: the suppression checks and the hand-overs of app events are local ones too)."""
    count = 0
    for run in runs:
        history = await client.get_workflow_handle(workflow_id, run_id=run.run_id).fetch_history()
        count += sum(
            1
            for e in history.events
            if e.HasField("marker_recorded_event_attributes")
            and e.marker_recorded_event_attributes.marker_name == "core_local_activity"
            and name in e.marker_recorded_event_attributes.details["data"].SerializeToString()
        )
    return count


def policy() -> DeliveryPolicy:
    return DeliveryPolicy(send_task_queue=f"send-{uuid.uuid4().hex[:8]}", delivery_wait_seconds=0)


def outage_23h(elapsed: timedelta) -> ProviderFailure | None:
    """429 `retry-after: 1` for the first 10 minutes (an attempt a second), then 5xx until
    22 h 50 min after the first attempt (backoff up to 5 min), then the provider recovers."""
    if elapsed < timedelta(minutes=10):
        return rate_limited()
    if elapsed < timedelta(hours=22, minutes=50):
        return server_error()
    return None


def assert_bounded_and_sent(
    result: EmailStatusResult | BatchStatusResult, runs: list[Run], transport: OutageTransport
) -> None:
    """Sent after the whole outage, every attempt counted, every run far below the limits."""
    assert result.status == SendStatus.SENT
    assert result.attempt_count == len(transport.requests) > 800
    assert transport.requests[-1][1] >= timedelta(hours=22, minutes=50)
    assert len(runs) >= 2 and result.runs == len(runs)
    assert max(r.events for r in runs) <= MAX_RUN_EVENTS, runs
    assert max(r.size for r in runs) <= MAX_RUN_BYTES, runs
    # What a run carries into the next fits Temporal's payload limit with room to spare.
    assert max(r.input_size for r in runs) <= MAX_RUN_INPUT_BYTES, runs
    # The status keeps the first and the latest attempts, and counts all of them.
    assert len(result.attempts) < 30
    assert result.attempts_omitted == result.attempt_count - len(result.attempts)
    assert result.attempts[-1].outcome == "accepted"
    assert result.not_after is not None


async def test_23h_outage_of_429s_then_500s_sends_once_with_every_run_bounded(
    skipping_env: WorkflowEnvironment,
) -> None:
    transport = OutageTransport(outage_23h)
    workflow_id, data = email_input(policy())
    result, runs = await send(skipping_env, transport, data, workflow_id)

    assert_bounded_and_sent(result, runs, transport)
    assert len(transport.deliveries) == 1
    assert {key for key, _ in transport.requests} == {f"{workflow_id}/send"}
    assert len(runs) >= 3
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


@pytest.mark.parametrize("kind", ["email", "batch"])
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
    kind: str,
) -> None:
    one_hour = dataclasses.replace(policy(), window_seconds=3600)
    transport = OutageTransport(answer)
    result: EmailStatusResult | BatchStatusResult
    if kind == "email":
        workflow_id, email = email_input(one_hour, text="hello")
        result, _ = await send(skipping_env, transport, email, workflow_id)
    else:
        workflow_id, batch = batch_input(one_hour, n=3)
        result, _ = await send_batch(skipping_env, transport, batch, workflow_id)
        assert [item.status for item in result.items] == [status] * 3

    assert result.status == status
    assert attempts[0] <= result.attempt_count == len(transport.requests) <= attempts[1]
    assert transport.deliveries == {} and transport.batches == {}
    assert result.last_error is not None
    may_duplicate = "resubmitting it under a new Idempotency-Key may send it twice"
    assert (may_duplicate in result.last_error.message) == (status == SendStatus.UNDETERMINED)
    assert result.provider_may_have_accepted == (status == SendStatus.UNDETERMINED)
    assert transport.requests[-1][1] < timedelta(hours=1)


async def test_webhook_flood_after_the_send_continues_as_new_and_keeps_counting(
    skipping_env: WorkflowEnvironment,
) -> None:
    async with email_sent_and_tracking(skipping_env) as (latest, first_run):
        events = await flood(
            latest, lambda n: DeliveryEventInput(f"msg_{n}", "email.delivery_delayed")
        )
        await latest.signal(DELIVERY_EVENT_SIGNAL, DeliveryEventInput("msg_end", "email.bounced"))
        # A repeat of a recent event id (delivered again by the provider) is not counted.
        await latest.signal(DELIVERY_EVENT_SIGNAL, DeliveryEventInput("msg_end", "email.bounced"))
        result: EmailStatusResult = await latest.result()
    runs = await runs_of(skipping_env.client, latest.id, first_run)
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
    async with email_sent_and_tracking(skipping_env) as (handle, _):
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
    async with workers(skipping_env, transport, data.policy) as task_queue:
        handle = await skipping_env.client.start_workflow(
            InviteInput.WORKFLOW,
            data,
            id=workflow_id,
            task_queue=task_queue,
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
    assert await local_activities(skipping_env.client, workflow_id, runs, b"render_invite") == 1


def batch_input(
    policy: DeliveryPolicy, n: int = 100, text: str | None = "hello", html: str | None = None
) -> tuple[str, SendBatchInput]:
    key = uuid.uuid4().hex
    items = [
        BatchItemInput(
            email_id=f"em_{key}_{i}",
            message=EmailMessage(
                sender="Acme <team@acme.test>",
                to=[f"user{i}@example.com"],
                subject="Your report",
                text=None if html else text,
                html=html,
                tags=[EmailTag("kind", "email"), EmailTag("email_id", f"em_{key}_{i}")],
            ),
        )
        for i in range(n)
    ]
    # No `accepted_at`: the window counts from the start on the server's (skipped) clock.
    return f"batch-{key}", SendBatchInput(f"bat_{key}", SendKind.EMAIL, items, policy=policy)


async def test_23h_outage_of_the_largest_batch_sends_each_once_with_every_run_bounded(
    skipping_env: WorkflowEnvironment,
) -> None:
    """The largest batch the API accepts (100 emails of Cyrillic HTML, a 512 KiB request)
    through the 23 h outage: it continues as new many times, and what each run carries fits
    the payload limit (red team: a batch that carried every message twice, 3.2 MB, failed its
    continue-as-new forever and never sent)."""
    transport = OutageTransport(outage_23h)
    workflow_id, data = batch_input(policy(), html=LARGEST_BATCH_HTML)
    request = {"emails": [resend_payload(i.message) for i in data.items if i.message]}
    size = len(json.dumps(request, ensure_ascii=False).encode())
    assert 500 * 1024 < size <= 512 * 1024, size
    result, runs = await send_batch(skipping_env, transport, data, workflow_id)

    assert_bounded_and_sent(result, runs, transport)
    assert [item.status for item in result.items] == [SendStatus.SENT] * 100
    key = f"{workflow_id}/send/0"
    assert list(transport.batches) == [key] and len(set(transport.batches[key])) == 100
    assert [item.provider_message_id for item in result.items] == transport.batches[key]
    assert {k for k, _ in transport.requests} == {key} and len(transport.messages) == 1


async def test_webhook_flood_after_a_batch_continues_as_new_and_tracks_each_item(
    skipping_env: WorkflowEnvironment,
) -> None:
    transport = OutageTransport(lambda _: None)
    workflow_id, data = batch_input(tracked_policy(), n=2)
    first, second = (item.email_id for item in data.items)
    started = sent_and_tracking(skipping_env, transport, workflow_id, data, BatchStatusResult)
    async with started as (latest, first_run):
        await latest.signal(
            DELIVERY_EVENT_SIGNAL,
            DeliveryEventInput("msg_done", "email.delivered", email_id=second),
        )
        events = await flood(
            latest,
            lambda n: DeliveryEventInput(f"msg_{n}", "email.delivery_delayed", email_id=first),
        )
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
    runs = await runs_of(skipping_env.client, workflow_id, first_run)
    log.info("batch flood of %d events: events per run %s", events + 1, [r.events for r in runs])

    assert len(runs) >= 2 and result.runs == len(runs)
    assert max(r.events for r in runs) <= MAX_RUN_EVENTS
    assert [item.status for item in result.items] == [SendStatus.BOUNCED, SendStatus.COMPLAINED]
    assert [e.event_id for e in result.items[1].delivery_events] == ["msg_done", "msg_complaint"]
    kept = result.items[0].delivery_events
    assert len(kept) == 25 and kept[0].event_id == "msg_1" and kept[-1].event_id == "msg_end"
    assert result.attempt_count == 1 and len(transport.requests) == 1


async def test_a_batch_of_100_invites_that_continues_as_new_sends_each_call_once(
    skipping_env: WorkflowEnvironment,
) -> None:
    """A batch's invitations meet 8 minutes of 429s (the run fills up and the batch
    continues as new mid-retries), then go out in one call; the reminders of the 99 not
    accepted a day later in one more; the rest expire at 3 days. Each call's bytes are the
    same on every attempt and each is rendered once."""
    transport = OutageTransport(after(always(rate_limited), timedelta(minutes=8), lambda _: None))
    key = uuid.uuid4().hex
    workflow_id = f"batch-{key}"
    items = [
        BatchItemInput(
            email_id=f"inv_{key}_{i}",
            invite=RenderInviteInput(
                invite_id=f"inv_{key}_{i}",
                to=f"guest{i}@example.com",
                sender="Acme <team@acme.test>",
                tenant_name="Acme",
                inviter_name="Bob",
                accept_url=f"https://app.example.test/invites/accept?invite=inv_{key}_{i}",
            ),
        )
        for i in range(100)
    ]
    data = InviteBatchInput(
        f"bat_{key}",
        SendKind.INVITE,
        items,
        policy=policy(),
        expires_in_seconds=3 * 86400,
        remind_after_seconds=86400,
    )
    async with workers(skipping_env, transport, data.policy) as task_queue:
        handle = await skipping_env.client.start_workflow(
            InviteBatchInput.WORKFLOW,
            data,
            id=workflow_id,
            task_queue=task_queue,
            result_type=InviteBatchResult,
        )
        # The server skips time only while asked to (a result, a sleep): past the 429s.
        while not transport.batches:
            await skipping_env.sleep(timedelta(minutes=1))
        accepted = await handle.execute_update(
            ACCEPT_UPDATE, AcceptInput(item=7), result_type=AcceptResult
        )
        assert accepted.accepted
        result: InviteBatchResult = await handle.result()
    runs = await runs_of(skipping_env.client, workflow_id, handle.first_execution_run_id or "")
    log.info("invite batch: events per run %s", [r.events for r in runs])

    assert len(runs) >= 2 and max(r.events for r in runs) <= MAX_RUN_EVENTS
    assert max(r.input_size for r in runs) <= MAX_RUN_INPUT_BYTES, runs
    assert list(transport.batches) == [f"{workflow_id}/send/0", f"{workflow_id}/send/1"]
    assert len(transport.messages) == 2  # each call the same bytes on every attempt
    assert [len(ids) for ids in transport.batches.values()] == [100, 99]
    statuses = [invite.status for invite in result.invites]
    assert statuses == ["expired"] * 7 + ["accepted"] + ["expired"] * 92
    assert result.attempt_count > 400 and result.runs == len(runs)
    reminded = [i.reminder.status if i.reminder else None for i in result.invites]
    assert reminded == [SendStatus.SENT] * 7 + [None] + [SendStatus.SENT] * 92
    renders = await local_activities(
        skipping_env.client, workflow_id, runs, b"render_invite_batch_emails"
    )
    assert renders == 2
