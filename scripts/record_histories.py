"""Record workflow histories for the replay tests: `python scripts/record_histories.py [name...]`.

Runs each scenario on a fresh dev server against the fake Resend, then exports the history
with the real CLI (`temporal workflow show --output json`) into tests/histories/. A send that
continued as new is exported run by run: `<name>.json` (the first run), `<name>_run2.json`...
The dev server suggests continue-as-new after `SUGGEST_CONTINUE_AS_NEW_EVENTS` events, so
that such a history stays small (the workflow honours the suggestion as it does in production,
where the server suggests it after 4 Ki events).

It never overwrites a recorded history: those of older code (recorded before a
`workflow.patched` change) are the proof that sends started by that code still replay.
Without names it records the scenarios that have no history yet and says which it kept;
naming a scenario whose history exists is refused (add a new scenario under a new name).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from activities.coalesce_types import COALESCER_WORKFLOW, coalescer_id  # noqa: E402
from activities.delivery_contract import SendKind  # noqa: E402
from activities.invite_tokens import PLACEHOLDER, derive_token, token_digest  # noqa: E402
from activities.suppressions import (  # noqa: E402
    SuppressionOrigin,
    SuppressionStore,
    list_workflow_id,
)
from activities.transports.base import EmailTransport, SentBatch, SentEmail  # noqa: E402
from activities.transports.outbox import OutboxTransport  # noqa: E402
from activities.types import (  # noqa: E402
    EmailAttachment,
    EmailMessage,
    EmailTag,
    InviteToken,
    RenderInviteInput,
)
from api.accept import start_summary  # noqa: E402
from config import Settings  # noqa: E402
from testkit.dev_server import start_local, temporal_binary  # noqa: E402
from testkit.fake_resend import FakeResendServer, Fault  # noqa: E402
from testkit.keys import FAKE_KEY, INVITE_TOKEN_SECRET  # noqa: E402
from testkit.polling import eventually  # noqa: E402
from testkit.runs import each_run  # noqa: E402
from worker import build_transport, build_workers  # noqa: E402
from workflows.batch_types import (  # noqa: E402
    BATCH_STATUS_QUERY,
    BatchItemInput,
    BatchStatusResult,
    SendBatchInput,
)
from workflows.invite import Invite  # noqa: E402
from workflows.invite_batch import InviteBatch  # noqa: E402
from workflows.invite_batch_types import InviteBatchInput  # noqa: E402
from workflows.send_batch import SendBatch  # noqa: E402
from workflows.send_email import SendEmail  # noqa: E402
from workflows.types import (  # noqa: E402
    ACCEPT_UPDATE,
    DELIVERY_EVENT_SIGNAL,
    RESCHEDULE_UPDATE,
    REVOKE_UPDATE,
    AcceptInput,
    AcceptResult,
    DeliveryEventInput,
    DeliveryPolicy,
    EmailStatusResult,
    InviteInput,
    QueuePriority,
    RescheduleInput,
    RevokeInput,
    RevokeResult,
    SendEmailInput,
)

OUT = Path(__file__).resolve().parent.parent / "tests" / "histories"
# The tests' secret: tests/test_invite_life.py derives each recorded invite's token to show
# that its history does not hold it.
TOKEN_SECRET = INVITE_TOKEN_SECRET
log = logging.getLogger("record")
# Far above every other scenario's history (< 100 events), far below the production default.
SUGGEST_CONTINUE_AS_NEW_EVENTS = 200

Scenario = Callable[[Client, DeliveryPolicy], Awaitable[str]]


async def start_email(client: Client, policy: DeliveryPolicy) -> WorkflowHandle[Any, Any]:
    email_id = f"em_{uuid.uuid4().hex}"
    message = EmailMessage(
        sender="durable-mail <onboarding@resend.dev>",
        to=["ann@example.com", "bob@example.com"],
        subject="Your report is ready",
        text="Hello",
        html="<p>Hello</p>",
        tags=[EmailTag("kind", "email"), EmailTag("email_id", email_id)],
    )
    return await client.start_workflow(
        SendEmail.run,
        SendEmailInput(
            email_id=email_id,
            message=message,
            policy=policy,
            accepted_at=datetime.now(UTC).isoformat(),
        ),
        id="email-" + email_id.removeprefix("em_"),
        task_queue="record",
        static_summary=start_summary(SendKind.EMAIL, None),
    )


async def start_batch(
    client: Client, policy: DeliveryPolicy, kind: SendKind
) -> WorkflowHandle[Any, Any]:
    key = uuid.uuid4().hex
    items = []
    for index in range(3):
        item_id = f"{'inv' if kind == SendKind.INVITE else 'em'}_{key}_{index}"
        to = f"guest{index}@example.com"
        if kind == SendKind.INVITE:
            invite = RenderInviteInput(
                invite_id=item_id,
                to=to,
                sender="durable-mail <onboarding@resend.dev>",
                tenant_name="Acme",
                inviter_name="Bob",
                accept_url=f"https://app.example.test/invites/accept?invite={item_id}&token=rec",
            )
            items.append(BatchItemInput(email_id=item_id, invite=invite))
        else:
            message = EmailMessage(
                sender="durable-mail <onboarding@resend.dev>",
                to=[to],
                subject="Your weekly digest",
                text="Hello",
                tags=[EmailTag("kind", "email"), EmailTag("email_id", item_id)],
            )
            items.append(BatchItemInput(email_id=item_id, message=message))
    data = SendBatchInput(
        batch_id=f"bat_{key}",
        kind=kind,
        items=items,
        tenant_id="acme",
        policy=replace(policy, priority=QueuePriority(priority_key=4, fairness_key="acme")),
        # As the API starts it since `batch-bounded-v1` (older recordings had none).
        accepted_at=datetime.now(UTC).isoformat(),
    )
    return await client.start_workflow(SendBatch.run, data, id=f"batch-{key}", task_queue="record")


async def start_invite_batch(client: Client, policy: DeliveryPolicy) -> WorkflowHandle[Any, Any]:
    return await start_batch(client, policy, SendKind.INVITE)


async def start_email_batch(client: Client, policy: DeliveryPolicy) -> WorkflowHandle[Any, Any]:
    return await start_batch(client, policy, SendKind.EMAIL)


async def to_its_end(handle: WorkflowHandle[Any, Any]) -> None:
    """Wait until the workflow ends, whatever the outcome (a failed send is recorded too)."""
    try:
        await handle.result()
    except WorkflowFailureError:
        pass


Starter = Callable[[Client, DeliveryPolicy], Awaitable[WorkflowHandle[Any, Any]]]


def to_the_end(start: Starter) -> Scenario:
    """Run one send to its end, whatever the outcome."""

    async def scenario(client: Client, policy: DeliveryPolicy) -> str:
        handle = await start(client, policy)
        await to_its_end(handle)
        return handle.id

    return scenario


run_email = to_the_end(start_email)


async def wait_sent(handle: WorkflowHandle[Any, Any]) -> None:
    async def sent() -> bool:
        if handle.id.startswith("batch-"):
            batch = await handle.query(BATCH_STATUS_QUERY, result_type=BatchStatusResult)
            return bool(batch.status == "sent")
        state = await handle.query("status", result_type=EmailStatusResult)
        return bool(state.status == "sent")

    await eventually(sent, timeout=30, what=f"{handle.id} sent")


def with_events(*event_types: str, early: bool = False, start: Starter = start_email) -> Scenario:
    """A send whose provider events arrive as the webhook route signals them."""

    async def scenario(client: Client, policy: DeliveryPolicy) -> str:
        handle = await start(client, policy)
        if not early:
            await wait_sent(handle)
        for n, event_type in enumerate(event_types):
            event = DeliveryEventInput(f"msg_{handle.id}_{n}", event_type, None, None)
            await handle.signal(DELIVERY_EVENT_SIGNAL, event)
        await handle.result()
        return handle.id

    return scenario


def with_policy(scenario: Scenario, **changes: Any) -> Scenario:
    """The same scenario under another delivery policy (a short send window, say)."""

    async def changed(client: Client, policy: DeliveryPolicy) -> str:
        return await scenario(client, dataclasses.replace(policy, **changes))

    return changed


def batch_with_events(start: Starter, *events: tuple[int, str], early: bool = False) -> Scenario:
    """A batch whose items' provider events (item index, event type) arrive by item id."""

    async def scenario(client: Client, policy: DeliveryPolicy) -> str:
        handle = await start(client, policy)
        if not early:
            await wait_sent(handle)
        batch = await handle.query(BATCH_STATUS_QUERY, result_type=BatchStatusResult)
        for n, (index, event_type) in enumerate(events):
            item_id = batch.items[index].id
            event = DeliveryEventInput(f"msg_{handle.id}_{n}", event_type, email_id=item_id)
            await handle.signal(DELIVERY_EVENT_SIGNAL, event)
        await to_its_end(handle)
        return handle.id

    return scenario


async def coalesced_emails(client: Client, policy: DeliveryPolicy) -> str:
    """Three emails due together through one coalescer shard: the first goes at once as a
    call of one (the provider holds it), the two that come meanwhile share the next call.
    The coalescer's history (recorded while it still holds their calls)."""
    coalescing = dataclasses.replace(policy, coalesce_shards=1)
    first = await start_email(client, coalescing)
    await wait_sent_or_sending(first)
    others = [await start_email(client, coalescing) for _ in range(2)]
    for handle in [first, *others]:
        await to_its_end(handle)
    return coalescer_id(policy.send_task_queue, 0)


async def wait_sent_or_sending(handle: WorkflowHandle[Any, Any]) -> None:
    async def claimed() -> bool:
        state = await handle.query("status", result_type=EmailStatusResult)
        return state.status in ("sending", "sent")

    await eventually(claimed, timeout=10, what=f"{handle.id} claimed by a call")


async def coalesced_email(client: Client, policy: DeliveryPolicy) -> str:
    """One email sent through a coalesced call (its own history: hand-off, claim, outcome)."""
    handle = await start_email(client, dataclasses.replace(policy, coalesce_shards=1))
    await to_its_end(handle)
    return handle.id


def hand_off_retried(scenario: Scenario) -> Scenario:
    """The first hand-off signals its ref, then stalls past the workflow task's heartbeat
    (the call's claim comes in a task of its own and is refused) and fails, as on a worker
    killed there; the local activity's retry hands the ref in again."""

    async def stalled(client: Client, policy: DeliveryPolicy) -> str:
        real = client.start_workflow
        handed: list[str] = []

        async def stalling(*args: Any, **kwargs: Any) -> Any:
            started = await real(*args, **kwargs)
            if args and args[0] == COALESCER_WORKFLOW:
                handed.append(kwargs["start_signal_args"][0].email_id)
                if len(handed) == 1:
                    await asyncio.sleep(9.0)
                    raise RuntimeError("the worker died after the hand-off signalled")
            return started

        client.start_workflow = stalling  # type: ignore[method-assign]
        try:
            return await scenario(client, policy)
        finally:
            del client.start_workflow
            assert len(handed) == 2, handed

    return stalled


async def suppression_list(client: Client, policy: DeliveryPolicy) -> str:
    """A tenant's suppression list: one add, a batch add (one listed already), a remove by
    address and a batch remove by id and address (one not listed)."""
    store = SuppressionStore(client, "record")
    tenant = f"record-{uuid.uuid4().hex[:8]}"
    first = await store.add(tenant, "Ann@Example.com", SuppressionOrigin.BOUNCE, "em_x")
    await store.add_many(
        tenant, ["bob@example.com", "ann@example.com", "cy@example.com"], SuppressionOrigin.MANUAL
    )
    await store.remove_many(tenant, ["bob@example.com"])
    await store.remove_many(tenant, [first.id, "nobody@example.com"])
    return list_workflow_id(tenant)


async def reset_past_window(client: Client, policy: DeliveryPolicy) -> str:
    """Sent, then reset (to its first task) after its send window: no second attempt."""
    short = dataclasses.replace(policy, window_seconds=1.0)
    handle = await start_email(client, short)
    await handle.result()
    state: EmailStatusResult = await handle.query("status", result_type=EmailStatusResult)
    assert state.not_after is not None
    return await reset_after(client, handle.id, datetime.fromisoformat(state.not_after))


async def reset_batch_past_window(client: Client, policy: DeliveryPolicy) -> str:
    """A batch sent, then reset (to its first task) after its send window: no second call."""
    short = dataclasses.replace(policy, window_seconds=1.0)
    handle = await start_email_batch(client, short)
    await handle.result()
    batch = await handle.query(BATCH_STATUS_QUERY, result_type=BatchStatusResult)
    assert batch.not_after is not None
    return await reset_after(client, handle.id, datetime.fromisoformat(batch.not_after))


async def reset_after(client: Client, workflow_id: str, not_after: datetime) -> str:
    """Reset the workflow to its first task once `not_after` has passed; await its end."""
    await eventually(lambda: datetime.now(UTC) > not_after, what="the end of the send window")
    address = client.service_client.config.target_host
    subprocess.run(
        [temporal_binary(), "workflow", "reset", "--address", address,
         "--workflow-id", workflow_id, "--type", "FirstWorkflowTask", "--reason", "recorded"],
        check=True, capture_output=True,
    )  # fmt: skip
    await to_its_end(client.get_workflow_handle(workflow_id))
    return workflow_id


async def timer_started(handle: WorkflowHandle[Any, Any]) -> None:
    async def started() -> bool:
        history = await handle.fetch_history()
        return any(e.HasField("timer_started_event_attributes") for e in history.events)

    await eventually(started, timeout=10, what=f"{handle.id} waiting on its timer")


def email_rescheduled(*, while_waiting: bool) -> Scenario:
    """An email with the fields of the Resend-compatible API (cc, bcc, headers, attachments),
    scheduled an hour ahead, then moved (`reschedule` update) to a second from now: before
    its first workflow task, or while its timer runs (that timer is cancelled, a new one
    starts)."""

    async def scenario(client: Client, policy: DeliveryPolicy) -> str:
        handle = await start_scheduled_email(client, policy)
        if while_waiting:
            await timer_started(handle)
        soon = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
        await handle.execute_update(RESCHEDULE_UPDATE, RescheduleInput(send_at=soon))
        await handle.result()
        return handle.id

    return scenario


def life_input(
    policy: DeliveryPolicy,
    *,
    app_link: bool = False,
    send_at: str | None = None,
    expires_in: float = 3600.0,
    remind_after: float | None = None,
) -> tuple[InviteInput, str | None]:
    """An `Invite` input (seconds, not days: recorded in real time) and its token, if ours."""
    invite = f"inv_{uuid.uuid4().hex}"
    base = f"https://app.example.test/invites/accept?invite={invite}"
    ref = None if app_link else InviteToken(invite, uuid.uuid4().hex)
    token = derive_token(TOKEN_SECRET, ref) if ref else None
    data = InviteInput(
        invite_id=invite,
        to="ann@example.com",
        sender="durable-mail <onboarding@resend.dev>",
        tenant_name="Acme",
        inviter_name="Bob",
        accept_url=f"{base}&code=app-own" if app_link else f"{base}&token={PLACEHOLDER}",
        role="admin",
        tenant_id="acme",
        policy=policy,
        send_at=send_at,
        locale="de",
        expires_in_seconds=expires_in,
        remind_after_seconds=remind_after,
        invite_token=ref,
        token_digest=token_digest(TOKEN_SECRET, token) if token else None,
    )
    return data, token


async def start_life(client: Client, data: InviteInput) -> WorkflowHandle[Any, Any]:
    return await client.start_workflow(
        Invite.run,
        data,
        id="invite-" + data.invite_id.removeprefix("inv_"),
        task_queue="record",
        static_summary=start_summary(SendKind.INVITE, data.tenant_id),  # as the API labels it
    )


async def signal_event(handle: WorkflowHandle[Any, Any], event_type: str, message: str) -> None:
    event = DeliveryEventInput(f"msg_{uuid.uuid4().hex}", event_type, message=message)
    await handle.signal(DELIVERY_EVENT_SIGNAL, event)


def life_accepted(*, app_link: bool) -> Scenario:
    """Sent, delivered, a wrong token (managed), then accepted."""

    async def scenario(client: Client, policy: DeliveryPolicy) -> str:
        data, token = life_input(policy, app_link=app_link)
        handle = await start_life(client, data)
        await wait_sent(handle)
        await signal_event(handle, "email.delivered", "invitation")
        if token is not None:
            wrong = AcceptInput(token_digest(TOKEN_SECRET, "wrong"))
            await handle.execute_update(ACCEPT_UPDATE, wrong, result_type=AcceptResult)
        digest = token_digest(TOKEN_SECRET, token) if token else None
        await handle.execute_update(ACCEPT_UPDATE, AcceptInput(digest), result_type=AcceptResult)
        await handle.result()
        return handle.id

    return scenario


async def life_continued_as_new(client: Client, policy: DeliveryPolicy) -> str:
    """An invite whose invitation meets 429s until its run is full: it continues as new
    mid-retries (bounded history), then the invitation goes out and the invite is accepted."""
    data, _ = life_input(policy, app_link=True, expires_in=120.0)
    handle = await start_life(client, data)

    async def sent() -> bool:
        state = await handle.query("status", result_type=EmailStatusResult)
        return bool(state.status == "sent")

    await eventually(sent, timeout=60, what="the invitation sent after the 429s")
    await handle.execute_update(ACCEPT_UPDATE, AcceptInput(None), result_type=AcceptResult)
    await handle.result()
    return handle.id


async def start_scheduled_email(client: Client, policy: DeliveryPolicy) -> WorkflowHandle[Any, Any]:
    email_id = f"em_{uuid.uuid4().hex}"
    message = EmailMessage(
        sender="Acme <invites@acme.example>",
        to=["ann@example.com"],
        subject="Your invoice",
        html="<p>Attached</p>",
        tags=[EmailTag("kind", "email"), EmailTag("email_id", email_id)],
        cc=["carl@example.com"],
        bcc=["dora@example.com"],
        headers={"X-Entity-Ref-ID": "invoice-42"},
        attachments=[
            EmailAttachment(filename="invoice.txt", content="aW52b2ljZQ=="),
            EmailAttachment(filename="logo.png", path="https://cdn.acme.example/logo.png"),
        ],
    )
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    return await client.start_workflow(
        SendEmail.run,
        SendEmailInput(email_id=email_id, message=message, policy=policy, send_at=later),
        id="email-" + email_id.removeprefix("em_"),
        task_queue="record",
    )


async def life_reminded_then_expired(client: Client, policy: DeliveryPolicy) -> str:
    data, _ = life_input(policy, expires_in=4.0, remind_after=1.5)
    handle = await start_life(client, data)
    await wait_sent(handle)
    await signal_event(handle, "email.delivered", "invitation")

    async def reminded() -> bool:
        history = await handle.fetch_history()
        completed = [
            e for e in history.events if e.HasField("activity_task_completed_event_attributes")
        ]
        return len(completed) == 2

    await eventually(reminded, timeout=10, what=f"{handle.id} reminded")
    await signal_event(handle, "email.delivered", "reminder")
    await handle.result()
    return handle.id


def delivered_then_expired(expires_in: float) -> Scenario:
    async def run(client: Client, policy: DeliveryPolicy) -> str:
        """An invitation sent and delivered; the invite then expires unaccepted."""
        data, _ = life_input(policy, expires_in=expires_in)
        handle = await start_life(client, data)
        await wait_sent(handle)
        await signal_event(handle, "email.delivered", "invitation")
        await handle.result()
        return handle.id

    return run


life_delivered = delivered_then_expired(3.0)


async def life_revoked_before_send(client: Client, policy: DeliveryPolicy) -> str:
    data, _ = life_input(policy, send_at=(datetime.now(UTC) + timedelta(hours=1)).isoformat())
    handle = await start_life(client, data)
    await handle.execute_update(REVOKE_UPDATE, RevokeInput())
    await handle.result()
    return handle.id


async def invite_batch_life(client: Client, policy: DeliveryPolicy) -> str:
    """A batch of 3 invites (1.3): sent in one call after a 500; item 0 accepted after a
    wrong token, item 1 revoked, item 2 delivered, reminded in a second call, expired."""
    key = uuid.uuid4().hex
    items, tokens, digests, refs = [], [], [], []
    for index in range(3):
        item_id = f"inv_{key}_{index}"
        ref = InviteToken(item_id, uuid.uuid4().hex)
        token = derive_token(TOKEN_SECRET, ref)
        invite = RenderInviteInput(
            invite_id=item_id,
            to=f"guest{index}@example.com",
            sender="durable-mail <onboarding@resend.dev>",
            tenant_name="Acme",
            inviter_name="Bob",
            accept_url=f"https://app.example.test/invites/accept?invite={item_id}&token={PLACEHOLDER}",
        )
        items.append(BatchItemInput(email_id=item_id, invite=invite))
        tokens.append(token)
        digests.append(token_digest(TOKEN_SECRET, token))
        refs.append(ref)
    data = InviteBatchInput(
        batch_id=f"bat_{key}",
        kind=SendKind.INVITE,
        items=items,
        tenant_id="acme",
        policy=replace(policy, priority=QueuePriority(priority_key=4, fairness_key="acme")),
        accepted_at=datetime.now(UTC).isoformat(),
        locale="de",
        expires_in_seconds=5.0,
        remind_after_seconds=2.0,
        tokens=refs,
        token_digests=digests,
    )
    handle = await client.start_workflow(
        InviteBatch.run, data, id=f"batch-{key}", task_queue="record"
    )
    await wait_sent(handle)
    wrong = AcceptInput(token_digest(TOKEN_SECRET, "wrong"), item=0)
    await handle.execute_update(ACCEPT_UPDATE, wrong, result_type=AcceptResult)
    right = AcceptInput(digests[0], item=0)
    await handle.execute_update(ACCEPT_UPDATE, right, result_type=AcceptResult)
    await handle.execute_update(REVOKE_UPDATE, RevokeInput(item=1), result_type=RevokeResult)
    event = DeliveryEventInput(
        f"msg_{uuid.uuid4().hex}", "email.delivered", email_id=items[2].email_id
    )
    await handle.signal(DELIVERY_EVENT_SIGNAL, event)
    await handle.result()
    return handle.id


SCENARIOS: dict[str, tuple[list[Fault], Scenario]] = {
    # SendEmail.
    "email_sent": ([], run_email),
    "email_delivered": ([Fault(status=500)], with_events("email.delivered", start=start_email)),
    "email_bounced": ([], with_events("email.bounced", start=start_email)),
    "email_failed_tracked": ([Fault(status=403, name="invalid_api_key")], run_email),
    "email_sent_outbox": ([], run_email),
    # Resend-compatible fields in the message, and a `reschedule` update while scheduled.
    "email_rescheduled": ([], email_rescheduled(while_waiting=False)),
    "email_rescheduled_while_waiting": ([], email_rescheduled(while_waiting=True)),
    "email_undetermined_after_500s": (
        [Fault(status=500)] * 30,
        with_policy(run_email, window_seconds=2.0),
    ),
    "email_failed_after_429s": (
        [Fault(status=429, retry_after=1)] * 30,
        with_policy(run_email, window_seconds=2.5),
    ),
    "email_undetermined_409": (
        [Fault(status=409, name="invalid_idempotent_request")],
        run_email,
    ),
    # Continue-as-new mid-retries (carrying attempts, backoff and window), then sent.
    "email_continued_as_new": ([Fault(status=500)] * 24, run_email),
    "email_reset_past_window": ([], reset_past_window),
    # SendBatch: one provider call for every item, each item tracked.
    "batch_invites_delivered": (
        [Fault(status=500), Fault(status=429, retry_after=1)],
        batch_with_events(
            start_invite_batch, (0, "email.delivered"), (1, "email.bounced"), (2, "email.bounced")
        ),
    ),
    "batch_emails_retried_then_delivered": (
        [Fault(status=500), Fault(status=429, retry_after=1)],
        batch_with_events(start_email_batch, (1, "email.delivered"), (0, "email.delivered")),
    ),
    "batch_emails_one_refused": (
        [Fault(invalid_items=(1,))],
        batch_with_events(start_email_batch, (0, "email.bounced"), (2, "email.complained")),
    ),
    "batch_event_before_send": (
        [Fault(hold=0.5)],
        batch_with_events(start_invite_batch, (2, "email.bounced"), early=True),
    ),
    "batch_failed_403": (
        [Fault(status=403, name="invalid_api_key")],
        to_the_end(start_email_batch),
    ),
    "batch_undetermined_after_500s": (
        [Fault(status=500)] * 30,
        with_policy(to_the_end(start_email_batch), window_seconds=2.0),
    ),
    "batch_failed_after_429s": (
        [Fault(status=429, retry_after=1)] * 30,
        with_policy(to_the_end(start_email_batch), window_seconds=2.5),
    ),
    "batch_continued_as_new": ([Fault(status=500)] * 24, to_the_end(start_email_batch)),
    "batch_reset_past_window": ([], reset_batch_past_window),
    # SendInviteEmail (workflows.invite.Invite, the invite's life).
    "invite_delivered": ([], life_delivered),
    "invite_life_accepted": ([Fault(status=500)], life_accepted(app_link=False)),
    "invite_life_app_link_accepted": ([], life_accepted(app_link=True)),
    "invite_life_reminded_then_expired": ([], life_reminded_then_expired),
    "invite_life_revoked_before_send": ([], life_revoked_before_send),
    # The Web UI's labels of each attempt (tests/test_web_ui_labels.py): a 500 then a 429
    # before the invitation goes; a provider that takes the email but answers too late (the
    # client's 2 s timeout), then the retry under the same key that it answers from its record.
    "invite_retried_500_429_summarized": (
        [Fault(status=500), Fault(status=429, retry_after=1)],
        life_delivered,
    ),
    "invite_timeout_then_sent_summarized": ([Fault(hold=2.5)], delivered_then_expired(8.0)),
    # Coalesced single sends (1.2): an email's own history, and its coalescer's.
    "email_coalesced": ([], coalesced_email),
    "coalescer_calls": ([Fault(hold=1.0)], coalesced_emails),
    # A tenant's suppression list (Auto-Upgrade entity): add, batch add, removes.
    "suppressions_list": ([], suppression_list),
    # An invite's life continues as new mid-retries, carrying its state and both emails.
    "invite_life_continued_as_new": (
        [Fault(status=429, retry_after=1)] * 20,
        life_continued_as_new,
    ),
    # SendInviteBatch (1.3): a batch's invites living as single ones.
    "invite_batch_life": ([Fault(status=500)], invite_batch_life),
    # An invite whose invitation goes in a coalesced call (coalescing on by default, 1.3):
    # hand-off, claim and outcome in the invite's own life, then delivered and accepted.
    "invite_life_coalesced_accepted": (
        [],
        with_policy(life_accepted(app_link=False), coalesce_shards=1),
    ),
    # Its hand-off retried after the ref reached the coalescer (a worker killed there): the
    # call's claim is refused for good (patch coalesce-claim-refusals-final), the ref is
    # composed again when it comes back, then delivered and accepted.
    "invite_life_coalesced_handoff_retried": (
        [],
        hand_off_retried(with_policy(life_accepted(app_link=False), coalesce_shards=1)),
    ),
    # An invite that settles its patches in its first task (patch
    # invite-patches-settled-at-start): no patch marker after that one.
    "invite_life_patches_settled_accepted": ([], life_accepted(app_link=False)),
}
# Scenarios whose worker writes to the local outbox instead of calling the fake Resend.
OUTBOX_SCENARIOS = frozenset({"email_sent_outbox"})


class ScenarioTransport:
    """The fake Resend, or the outbox for the scenarios that need it (one pair of workers)."""

    def __init__(self, resend: EmailTransport, outbox: EmailTransport) -> None:
        self.resend = resend
        self.outbox = outbox
        self.current = resend
        self.name = resend.name
        self.capabilities = resend.capabilities

    def use_outbox(self, outbox: bool) -> None:
        self.current = self.outbox if outbox else self.resend
        self.name = self.current.name
        self.capabilities = self.current.capabilities

    async def send(self, message: EmailMessage, idempotency_key: str) -> SentEmail:
        return await self.current.send(message, idempotency_key)

    async def send_batch(self, messages: list[EmailMessage], idempotency_key: str) -> SentBatch:
        return await self.current.send_batch(messages, idempotency_key)


def to_record(names: list[str]) -> list[str]:
    """The scenarios to record now: never one whose history already exists."""
    unknown = set(names) - set(SCENARIOS)
    if unknown:
        raise SystemExit(f"unknown scenarios: {sorted(unknown)}; known: {sorted(SCENARIOS)}")
    recorded = [name for name in names or SCENARIOS if (OUT / f"{name}.json").exists()]
    if names and recorded:
        raise SystemExit(
            f"refusing to overwrite recorded histories {recorded}: they prove that sends "
            "started by older code still replay. Record the new behaviour under a new name."
        )
    for name in recorded:
        log.info("kept %s (already recorded)", name)
    return [name for name in names or SCENARIOS if name not in recorded]


async def run_ids(client: Client, workflow_id: str) -> list[str]:
    """The runs of a workflow, first to last (more than one if it continued as new)."""
    latest = await client.get_workflow_handle(workflow_id).describe()
    run_id = latest.raw_description.workflow_execution_info.first_run_id or latest.run_id
    return [run async for run, _ in each_run(client, workflow_id, run_id)]


def export(address: str, workflow_id: str, run_id: str | None, path: Path) -> None:
    """`temporal workflow show --output json` of one run (the latest if `run_id` is None)."""
    run = ["--run-id", run_id] if run_id else []
    shown = subprocess.run(
        [temporal_binary(), "workflow", "show", "--address", address,
         "--workflow-id", workflow_id, *run, "--output", "json"],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    # "x": fails rather than overwrite a history written meanwhile.
    with path.open("x") as out:
        out.write(shown.stdout)


async def main(names: list[str]) -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    OUT.mkdir(parents=True, exist_ok=True)
    chosen = to_record(names)
    if not chosen:
        log.info("nothing to record: every scenario has its history in %s", OUT)
        return
    env = await start_local(
        dev_server_extra_args=[
            "--dynamic-config-value",
            f"limit.historyCount.suggestContinueAsNew={SUGGEST_CONTINUE_AS_NEW_EVENTS}",
        ]
    )
    address = env.client.service_client.config.target_host
    try:
        with FakeResendServer() as fake:
            settings = Settings(
                _env_file=None,
                task_queue="record",
                send_task_queue="record-send",
                resend_api_key=SecretStr(FAKE_KEY),
                resend_api_url=fake.url,
                resend_timeout_seconds=2.0,
                resend_rate_limit_per_second=50.0,
                invite_token_secret=SecretStr(TOKEN_SECRET),
                # 1.0 workers are Worker Deployment Versions: make this one current, or
                # no workflow task is dispatched to it.
                worker_set_current=True,
            )
            policy = DeliveryPolicy(
                initial_backoff_seconds=0.2,
                max_backoff_seconds=1.0,
                attempt_timeout_seconds=10.0,
                send_task_queue="record-send",
                # Short, so scenarios without a final provider event still complete.
                delivery_wait_seconds=1.0,
            )
            async with httpx.AsyncClient(base_url=fake.url, timeout=2.0) as http:
                outbox_dir = Path(tempfile.mkdtemp(prefix="record-outbox-"))
                transport = ScenarioTransport(
                    build_transport(settings, http), OutboxTransport(outbox_dir)
                )
                workers = build_workers(env.client, settings, transport)
                async with workers[0], workers[1]:
                    for name in chosen:
                        faults, scenario = SCENARIOS[name]
                        fake.fake.reset()  # no fault left over from the last scenario
                        transport.use_outbox(name in OUTBOX_SCENARIOS)
                        fake.fake.enqueue_faults(faults)
                        workflow_id = await scenario(env.client, policy)
                        runs = await run_ids(env.client, workflow_id)
                        for n, run_id in enumerate(runs, start=1):
                            suffix = f"_run{n}" if n > 1 else ""
                            export(address, workflow_id, run_id if len(runs) > 1 else None,
                                   OUT / f"{name}{suffix}.json")  # fmt: skip
                        log.info("recorded %s (%s, %d run(s))", name, workflow_id, len(runs))
    finally:
        await env.shutdown()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
