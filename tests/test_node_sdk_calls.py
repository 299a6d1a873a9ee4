"""Resend's Node SDK on the calls it had not tried against us: `emails.update`
(reschedule), `emails.cancel` and `batch.send`, on the real stack of test_resend_compat."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import resend

from testkit.keys import ACME_KEY
from tests.test_resend_compat import (
    Stack,
    deliveries_of,
    in_future,
    needs_node_sdk,
    run_node,
    wait_last_event,
)
from tests.test_resend_compat import stack as stack  # the module's stack


@pytest.fixture
def acme(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    """The Python SDK too (the checks read with it), as the same tenant."""
    monkeypatch.setattr(resend, "api_url", stack.url)
    monkeypatch.setattr(resend, "api_key", ACME_KEY)
    yield stack


@needs_node_sdk
async def test_node_sdk_reschedules_cancels_and_sends_a_batch(acme: Stack) -> None:
    stack = acme
    to = f"node-{uuid.uuid4().hex[:8]}@example.com"
    later = in_future(hours=3)
    answers = await run_node(
        "schedule_batch.cjs", stack.url, ACME_KEY, TO=to, AT=in_future(hours=1), LATER=later
    )
    email_id = answers["scheduled"]["data"]["id"]
    assert answers["scheduled"]["error"] is None
    assert answers["updated"]["error"] is None and answers["updated"]["data"]["id"] == email_id
    assert answers["afterUpdate"]["data"]["last_event"] == "scheduled"
    assert answers["afterUpdate"]["data"]["scheduled_at"][:16] == later[:16]
    assert answers["canceled"]["error"] is None and answers["canceled"]["data"]["id"] == email_id
    await wait_last_event(email_id, "canceled")
    assert deliveries_of(stack.fake, email_id) == []

    batch = answers["batch"]
    assert batch["error"] is None and len(batch["data"]["data"]) == 2
    for item in batch["data"]["data"]:
        await wait_last_event(item["id"], "sent", "delivered")
