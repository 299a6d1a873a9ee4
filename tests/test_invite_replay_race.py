"""An invite read from its first moment still replays.

A query that reaches an invite during its first workflow task has the server complete that
task at once. The invite's first local activity (its rendering) can finish just then: its
marker goes in that task, while the code after it runs in the next. A replay runs that code
one task earlier, where the next task's patch markers are not known yet, so a
`workflow.patched` there answered False and the replay failed ("Non-deprecated patch marker
encountered for change suppression-check"): the invite's next task after a worker restart
or a cache eviction would fail the same way, for good. Before the fix 3 of these 12 invites
(6 of 20 in a longer run) failed to replay; a new invite now settles its patches in its
first task (`workflows.delivery.changes.SETTLED_AT_START`).

The invites are started without a priority, as any SDK client may start one: the server
then hands their first task out some 300 ms after the start, time for the queries to meet
it (the API's starts carry a priority and were handed out in a few ms here, but a backlog
delays a first task as much).
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from temporalio.client import Client
from temporalio.worker import Replayer

from config import Settings
from workflows.invite import Invite
from workflows.registry import WORKFLOWS
from workflows.types import DeliveryPolicy, EmailStatusResult, InviteInput

INVITES = 12
READERS = 3


def invite_input(policy: DeliveryPolicy) -> InviteInput:
    """An invite of a tenant (its suppression list is checked: the patch after the
    rendering) with the app's own accept link."""
    invite = f"inv_{uuid.uuid4().hex}"
    return InviteInput(
        invite_id=invite,
        to="ann@example.com",
        sender="durable-mail <onboarding@resend.dev>",
        tenant_name="Acme",
        inviter_name="Bob",
        accept_url=f"https://app.example.test/invites/accept?invite={invite}&code=app-own",
        tenant_id="acme",
        policy=policy,
    )


async def read_until_sent(client: Client, workflow_id: str) -> None:
    """Query the invite from its start, as a polling reader does (our API reads it by
    describe, then query), until its email is sent."""
    handle = client.get_workflow_handle(workflow_id)
    sent = asyncio.Event()

    async def reader() -> None:
        while not sent.is_set():
            state = await handle.query("status", result_type=EmailStatusResult)
            if state.status == "sent":
                sent.set()
            await asyncio.sleep(0.005)

    await asyncio.wait_for(asyncio.gather(*(reader() for _ in range(READERS))), timeout=30)


@pytest.mark.timeout(180)
async def test_invites_read_from_their_first_task_replay(
    client: Client, settings: Settings, worker: None
) -> None:
    policy = DeliveryPolicy(send_task_queue=settings.send_task_queue)
    failed: list[str] = []
    for _ in range(INVITES):
        handle = await client.start_workflow(
            Invite.run,
            invite_input(policy),
            id=f"invite-{uuid.uuid4().hex}",
            task_queue=settings.task_queue,
        )
        await read_until_sent(client, handle.id)
        try:
            await Replayer(
                workflows=WORKFLOWS, data_converter=client.data_converter
            ).replay_workflow(await handle.fetch_history())
        except Exception as err:  # the replay's own error, whatever its class
            failed.append(f"{handle.id}: {str(err)[:300]}")
    assert failed == [], failed
