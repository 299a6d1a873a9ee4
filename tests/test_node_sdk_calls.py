"""Resend's Node SDK 6.x, unchanged but for the base URL, on the calls a ported app makes
after sending: `emails.update` (reschedule), `emails.cancel`, `batch.send`, and the webhook
endpoint's `update`, `rotateSigningSecret` and `remove` (tests/node/manage.cjs).

The real stack of tests/test_resend_compat.py (dev server, worker, API, fake Resend).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from testkit.keys import ACME_KEY
from tests.test_resend_compat import (
    Stack,
    deliveries_of,
    needs_node_sdk,
    run_node,
    sdk,  # noqa: F401  (the SDK pointed at the stack)
    stack,  # noqa: F401  (the module's stack)
    wait_last_event,
)


@needs_node_sdk
async def test_node_sdk_reschedules_cancels_batches_and_manages_webhooks(
    sdk: Stack,  # noqa: F811
) -> None:
    to = f"node-{uuid.uuid4().hex[:8]}@example.com"
    endpoint = "https://hooks.example.com/resend"
    answers = await run_node("manage.cjs", sdk.url, ACME_KEY, TO=to, ENDPOINT=endpoint)

    mail = answers["emails"]
    email_id = mail["scheduled"]["data"]["id"]
    # "in 1 hour" was read; the update moved it to the ISO time given.
    assert mail["updated"]["error"] is None and mail["updated"]["data"]["id"] == email_id
    moved = datetime.fromisoformat(mail["afterUpdate"]["data"]["scheduled_at"])
    assert abs(moved - datetime.fromisoformat(mail["later"])) < timedelta(seconds=1)
    assert mail["afterUpdate"]["data"]["last_event"] == "scheduled"
    assert mail["canceled"]["error"] is None and mail["canceled"]["data"]["id"] == email_id
    assert mail["afterCancel"]["data"]["last_event"] == "canceled"
    assert deliveries_of(sdk.fake, email_id) == []
    batch_ids = [item["id"] for item in mail["batch"]["data"]["data"]]
    assert len(batch_ids) == 2 and mail["batch"]["error"] is None
    for batch_id in batch_ids:
        await wait_last_event(batch_id, "sent", "delivered")
        assert len(deliveries_of(sdk.fake, batch_id)) == 1

    hooks = answers["webhooks"]
    created = hooks["created"]["data"]
    assert hooks["updated"]["error"] is None and hooks["updated"]["data"]["id"] == created["id"]
    after = hooks["afterUpdate"]["data"]
    assert after["endpoint"] == f"{endpoint}/v2" and after["status"] == "disabled"
    assert sorted(after["events"]) == ["email.bounced", "email.sent"]
    rotated = hooks["rotated"]["data"]["signing_secret"]
    assert rotated.startswith("whsec_") and rotated != created["signing_secret"]
    assert hooks["removed"]["error"] is None and hooks["removed"]["data"]["deleted"] is True
    assert hooks["afterRemove"]["data"] is None
    assert hooks["afterRemove"]["error"]["name"] == "not_found"
