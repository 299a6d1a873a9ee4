"""A reset never claims that nothing went out (red team of issue 18).

`temporal workflow reset` re-applies the signals and updates that came after the reset point
to the new run, before that run's own send: a DELETE queued after the email went out, an
invite's accept. Applied there, they used to end the new run `cancelled`, `attempt_count 0`,
`provider_may_have_accepted: false`, which the docs call safe to resubmit, although the
discarded run had sent the email. A reset run knows nothing of what the discarded run did, so
nothing may be cancelled there: the email goes again under its key (the provider answers from
its idempotency record without sending), or, once that cannot be, reads `undetermined`.
The email here goes alone (`alone`): a coalesced one is never composed again after a reset
(tests/test_coalesce.py).
"""

from __future__ import annotations

import httpx
from temporalio.client import Client

from config import Settings
from testkit.fake_resend import FakeResendServer
from testkit.polling import eventually
from tests.helpers import INVITE, link_token, wait_for_status
from tests.test_reset import reset_to_first_task
from workflows.types import CANCEL_REQUEST_SIGNAL, CancelInput

EMAIL = {"to": "ann@example.com", "subject": "Your report", "text": "Hello"}


async def test_reset_of_a_sent_email_with_a_queued_delete_does_not_read_cancelled(
    alone: None, api: httpx.AsyncClient, worker: None, client: Client, settings: Settings,
    fake_resend: FakeResendServer,
) -> None:  # fmt: skip
    settings.delivery_wait_seconds = 3600  # still waiting for delivery events
    body = (await api.post("/v1/emails", json=EMAIL)).json()
    sent = await wait_for_status(api, body["id"], "sent")
    handle = client.get_workflow_handle(body["workflow_id"])
    # What a DELETE records when no worker can answer it at once (the durable cancel).
    await handle.signal(CANCEL_REQUEST_SIGNAL, CancelInput(reason="test"))
    noted = await eventually(
        lambda: _cancel_requested(api, body["id"]), what="the cancel request noted"
    )
    assert noted["status"] == "sent"

    await reset_to_first_task(settings, body["workflow_id"])
    await eventually(lambda: fake_resend.fake.requests_total == 2, what="the reset run's attempt")
    again = await wait_for_status(api, body["id"], "sent")
    assert again["provider_message_id"] == sent["provider_message_id"]
    assert again["provider_may_have_accepted"] is True
    assert fake_resend.fake.delivered_count == 1  # the provider replayed its first answer
    assert (await api.delete(f"/v1/emails/{body['id']}")).status_code == 409


async def test_reset_of_an_accepted_invite_does_not_read_cancelled(
    api: httpx.AsyncClient, worker: None, client: Client, settings: Settings,
    fake_resend: FakeResendServer,
) -> None:  # fmt: skip
    body = (await api.post("/v1/invites", json=INVITE)).json()
    invite_id = body["invite_id"]
    await wait_for_status(api, invite_id, "sent")
    [delivery] = fake_resend.fake.deliveries
    token = link_token(delivery.payload["text"])
    accepted = await api.post(f"/v1/invites/{invite_id}/accept", json={"token": token})
    assert accepted.status_code == 200, accepted.text

    # The reset run gets the accept re-applied before its own send of the invitation: it
    # cannot know the discarded run sent it, so it stops the email as "may have gone out".
    await reset_to_first_task(settings, body["workflow_id"])
    email = await wait_for_status(api, invite_id, "undetermined")
    invite = (await api.get(f"/v1/invites/{invite_id}")).json()
    assert invite["status"] == "accepted", invite
    assert invite["invitation"]["status"] == "undetermined"
    assert email["provider_may_have_accepted"] is True and email["cancelled_at"] is None
    assert fake_resend.fake.requests_total == 1 and fake_resend.fake.delivered_count == 1


async def _cancel_requested(api: httpx.AsyncClient, email_id: str) -> dict[str, object] | None:
    status = (await api.get(f"/v1/emails/{email_id}")).json()
    return status if status.get("cancel_requested_at") else None
