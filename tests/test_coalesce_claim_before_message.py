"""A call's claim that reaches an invite before this run of it has its message: the path of
a worker killed after the invite's hand-off signalled its coalescer, before the invite's
workflow task completed. The next worker runs that task again from the start, and the
call's claim arrives while the invite renders its email again (no message yet).

It used to be answered "withdrawn" alone: the call did not know it never had the email,
held it, and told the invite's retried hand-off "that call was made": the invite ended
`undetermined` (CallAlreadyMade), unsent (3 of 300 in a chaos run with a worker kill -9).
Now the hand-off refuses that call for good (`never`), and the email is sent once.

The render is held past the workflow task's heartbeat (80% of its 10 s timeout), so the
server delivers the claim in a task of its own while the render still runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from temporalio import activity
from temporalio.client import Client
from temporalio.worker import Replayer

import worker as worker_module
from activities.coalesce_types import CLAIM_UPDATE, WITHDRAWN, ClaimInput, ClaimResult
from activities.types import RenderInviteEmailsInput, RenderInviteEmailsResult
from config import Settings
from testkit.fake_resend import FakeResendServer
from testkit.polling import eventually
from tests.helpers import INVITE, running_worker, wait_for_status
from workflows.registry import WORKFLOWS

HELD = 9.0


@pytest.fixture
def slow_first_render(monkeypatch: pytest.MonkeyPatch) -> asyncio.Event:
    """The invite's first render waits `HELD` s; the returned event is set when it starts."""
    real: Callable[..., list[Callable[..., Any]]] = worker_module._renderers
    started = asyncio.Event()

    def renderers(renderer: Any) -> list[Callable[..., Any]]:
        single, *rest = real(renderer)

        @activity.defn(name="render_invite_emails")
        async def held_render(data: RenderInviteEmailsInput) -> RenderInviteEmailsResult:
            if not started.is_set():
                started.set()
                await asyncio.sleep(HELD)
            result: RenderInviteEmailsResult = await single(data)
            return result

        return [held_render, *rest]

    monkeypatch.setattr(worker_module, "_renderers", renderers)
    return started


async def test_a_claim_before_the_message_is_refused_for_good_and_the_email_goes_once(
    slow_first_render: asyncio.Event,
    api: httpx.AsyncClient,
    client: Client,
    settings: Settings,
    fake_resend: FakeResendServer,
) -> None:
    async with running_worker(client, settings):
        created = (await api.post("/v1/invites", json=INVITE)).json()
        await asyncio.wait_for(slow_first_render.wait(), timeout=30)
        handle = client.get_workflow_handle(created["workflow_id"])
        answer = await handle.execute_update(
            CLAIM_UPDATE,
            ClaimInput("coalescer:test:0/1-before-message", "0" * 64),
            result_type=ClaimResult,
        )
        assert answer.outcome == WITHDRAWN
        assert answer.never, "the call must know it never had this email"

        await wait_for_status(api, created["invite_id"], "sent", timeout=60)

        async def one_delivery() -> bool:
            return len(fake_resend.fake.deliveries_for(INVITE["email"])) == 1

        await eventually(one_delivery, timeout=10, what="one delivery")
    history = await handle.fetch_history()
    await Replayer(workflows=WORKFLOWS, data_converter=client.data_converter).replay_workflow(
        history
    )
