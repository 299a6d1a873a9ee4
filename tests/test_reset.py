"""Exactly once across `temporal workflow reset`.

A reset starts a new run from an earlier point of the history and discards what came after
it, the send included. Within the send window the new run's attempt reuses the idempotency
key, so the provider answers it without sending again. Past the window the provider may
have forgotten the key: the new run must not call it at all.

Within the window these tests send alone (`alone`): a reset of a coalesced email is never
composed again, and takes its call's outcome instead (tests/test_coalesce.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from config import Settings
from testkit.dev_server import temporal_binary
from testkit.fake_resend import FakeResendServer
from testkit.polling import eventually
from tests.helpers import INVITE, wait_for_batch, wait_for_status

EMAIL = {"to": "ann@example.com", "subject": "Your report", "text": "Hello"}
BATCH = {"emails": [{**EMAIL, "to": f"user{i}@example.com"} for i in range(3)]}
# How a test waits for a status: tests.helpers.wait_for_status (an email) or wait_for_batch.
Wait = Callable[..., Awaitable[dict[str, Any]]]


async def reset_to_first_task(settings: Settings, workflow_id: str) -> None:
    """What an operator runs: `temporal workflow reset --type FirstWorkflowTask`."""
    proc = await asyncio.create_subprocess_exec(
        temporal_binary(), "workflow", "reset",
        "--address", settings.temporal_address,
        "--workflow-id", workflow_id,
        "--type", "FirstWorkflowTask",
        "--reason", "test: replay the send",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await proc.communicate()
    assert proc.returncode == 0, out.decode()


@pytest.fixture
def two_second_window(settings: Settings) -> None:
    """A send window that ends two seconds after the accept, with no wait for delivery."""
    settings.delivery_wait_seconds = 0
    settings.send_window_seconds = 2.0


async def sent_to_the_end(
    api: httpx.AsyncClient, client: Client, path: str, payload: dict[str, Any], wait: Wait
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Accept `payload` at `path`, wait until it reads `sent` and its run has ended."""
    body: dict[str, Any] = (await api.post(path, json=payload)).json()
    sent = await wait(api, body["id"], "sent")
    await client.get_workflow_handle(body["workflow_id"]).result()
    return body, sent


async def reset_within_the_window(
    api: httpx.AsyncClient, settings: Settings, fake_resend: FakeResendServer,
    body: dict[str, Any], wait: Wait,
) -> dict[str, Any]:  # fmt: skip
    """Reset, wait for the reset run's attempt (the provider's second request), read `sent`."""
    await reset_to_first_task(settings, body["workflow_id"])
    await eventually(lambda: fake_resend.fake.requests_total == 2, what="the reset run's attempt")
    return await wait(api, body["id"], "sent")


async def reset_past_the_window(
    api: httpx.AsyncClient, settings: Settings, body: dict[str, Any], sent: dict[str, Any],
    wait: Wait,
) -> dict[str, Any]:  # fmt: skip
    """Wait past the window's end (it is in the status), reset, and read `undetermined`."""
    # The window counts from the accept (kept in the input), not from the reset run's start.
    not_after = datetime.fromisoformat(sent["not_after"])
    await eventually(lambda: datetime.now(UTC) > not_after, what="the window's end")
    await reset_to_first_task(settings, body["workflow_id"])
    status = await wait(api, body["id"], "undetermined")
    assert status["attempt_count"] == 0  # the reset run knows of no attempt, and made none
    assert "reset" in status["last_error"]["message"]
    assert "may send it twice" in status["last_error"]["message"]
    return status


def provider_ids(status: dict[str, Any]) -> list[str]:
    """The provider's message ids in an email's or a batch's status."""
    return [item["provider_message_id"] for item in status.get("items", [status])]


@pytest.mark.parametrize(
    ("path", "payload", "wait", "messages"),
    [("/v1/emails", EMAIL, wait_for_status, 1), ("/v1/emails/batch", BATCH, wait_for_batch, 3)],
    ids=["email", "batch"],
)
async def test_reset_within_the_window_resends_under_the_same_key_and_delivers_once(
    alone: None, api: httpx.AsyncClient, worker: None, client: Client, settings: Settings,
    fake_resend: FakeResendServer, path: str, payload: dict[str, Any], wait: Wait, messages: int,
) -> None:  # fmt: skip
    settings.delivery_wait_seconds = 0
    body, sent = await sent_to_the_end(api, client, path, payload, wait)

    again = await reset_within_the_window(api, settings, fake_resend, body, wait)
    assert fake_resend.fake.delivered_count == messages  # the provider replayed its first answer
    assert provider_ids(again) == provider_ids(sent)


async def test_reset_past_the_send_window_makes_no_attempt_and_says_undetermined(
    api: httpx.AsyncClient, worker: None, client: Client, settings: Settings,
    fake_resend: FakeResendServer, two_second_window: None,
) -> None:  # fmt: skip
    body, sent = await sent_to_the_end(api, client, "/v1/emails", EMAIL, wait_for_status)

    # Past the window, the provider may forget the key.
    await reset_past_the_window(api, settings, body, sent, wait_for_status)
    assert fake_resend.fake.requests_total == 1 and fake_resend.fake.delivered_count == 1


async def test_reset_batch_past_the_send_window_makes_no_attempt_and_says_undetermined(
    api: httpx.AsyncClient, worker: None, client: Client, settings: Settings,
    fake_resend: FakeResendServer, two_second_window: None,
) -> None:  # fmt: skip
    body, sent = await sent_to_the_end(api, client, "/v1/emails/batch", BATCH, wait_for_batch)

    status = await reset_past_the_window(api, settings, body, sent, wait_for_batch)
    assert fake_resend.fake.requests_total == 1 and fake_resend.fake.delivered_count == 3
    assert status["not_after"] == sent["not_after"]
    assert status["counts"] == {"undetermined": 3}
    item = (await api.get(f"/v1/emails/{body['items'][0]['id']}")).json()
    # A reset run cannot know what the run it replaced did: it never claims nothing went out.
    assert item["status"] == "undetermined" and item["provider_may_have_accepted"] is True


async def test_reset_invite_keeps_its_life_and_sends_its_invitation_once(
    alone: None, api: httpx.AsyncClient, worker: None, client: Client, settings: Settings,
    fake_resend: FakeResendServer,
) -> None:  # fmt: skip
    body = (await api.post("/v1/invites", json={**INVITE, "remind_after_days": 2})).json()
    await wait_for_status(api, body["invite_id"], "sent")
    before = (await api.get(f"/v1/invites/{body['invite_id']}")).json()

    # The reset run starts over from the first task, seconds later: its expiry and reminder
    # still count from the accept (a reset must not give the invite a new life).
    await reset_to_first_task(settings, body["workflow_id"])
    await eventually(lambda: fake_resend.fake.requests_total == 2, what="the reset run's attempt")
    after = (await api.get(f"/v1/invites/{body['invite_id']}")).json()
    assert after["status"] == "pending" and after["live"] is True
    times = ("created_at", "expires_at", "remind_at")
    assert [after[t] for t in times] == [before[t] for t in times]
    assert fake_resend.fake.delivered_count == 1  # the provider replayed its first answer
