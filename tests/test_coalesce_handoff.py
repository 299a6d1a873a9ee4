"""An email whose hand-off is retried after its ref reached the coalescer: the path of a
worker killed after the hand-off signalled, before the email's workflow task completed.

The coalescer composes the ref into a call at once; the call's claim reaches the email
while it still runs the hand-off (it is not waiting yet) and is withdrawn; then the retried
hand-off hands the same ref in again. That call never sent the email, so the email is
composed again and sent once (it used to end `undetermined`, "CallAlreadyMade", unsent).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from activities.coalesce_types import COALESCER_WORKFLOW
from config import Settings
from testkit.fake_resend import FakeResendServer, Fault
from testkit.polling import eventually
from tests.helpers import INVITE, wait_for_status

# Past the email's workflow task heartbeat (80% of its 10 s timeout): the server delivers
# the call's claim in a task of its own while the hand-off is still running.
STALLED = 9.0


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"coalesce_shards": 1})


@dataclass
class HandOffs:
    """Every hand-off of the test, by email id, and which emails' first one stalls (by the
    order of their first hand-off)."""

    stalling: set[int] = field(default_factory=lambda: {0})
    handed: list[str] = field(default_factory=list)

    def emails(self) -> list[str]:
        return list(dict.fromkeys(self.handed))


@pytest.fixture
def hand_offs(client: Client, monkeypatch: pytest.MonkeyPatch) -> HandOffs:
    """The first hand-off of a stalling email signals its ref, then stalls and fails (as a
    killed worker's would); the local activity's retry hands it in again."""
    real = client.start_workflow
    seen = HandOffs()

    async def stalling(*args: Any, **kwargs: Any) -> Any:
        started = await real(*args, **kwargs)
        if args and args[0] == COALESCER_WORKFLOW:
            email_id = kwargs["start_signal_args"][0].email_id
            seen.handed.append(email_id)
            first = seen.handed.count(email_id) == 1
            if first and seen.emails().index(email_id) in seen.stalling:
                await asyncio.sleep(STALLED)
                raise RuntimeError("the worker died after the hand-off signalled")
        return started

    monkeypatch.setattr(client, "start_workflow", stalling)
    return seen


async def accepted(api: httpx.AsyncClient, path: str, n: int) -> str:
    body = {"to": f"user{n}@example.com", "subject": f"Hi {n}", "text": f"Hello {n}"}
    if path == "/v1/invites":
        body = {**INVITE, "email": f"user{n}@example.com"}
    response = await api.post(path, json=body)
    assert response.status_code == 202, response.text
    answer = response.json()
    return str(answer.get("invite_id") or answer["id"])


ENDED = ("sent", "undetermined", "failed")


@pytest.mark.timeout(90)
@pytest.mark.parametrize("path", ["/v1/emails", "/v1/invites"])
async def test_a_withdrawn_email_handed_in_again_is_sent_once(
    path: str,
    hand_offs: HandOffs,
    worker: None,
    api: httpx.AsyncClient,
    fake_resend: FakeResendServer,
) -> None:
    """Its call had nothing else, so it ended before the hand-off came back."""
    email_id = await accepted(api, path, 1)
    status = await wait_for_status(api, email_id, *ENDED, timeout=60)
    assert len(hand_offs.handed) == 2 and len(hand_offs.emails()) == 1
    assert status["status"] == "sent", status.get("last_error")
    assert len(fake_resend.fake.deliveries) == 1 and fake_resend.fake.duplicates() == []
    assert status["provider_message_id"] == fake_resend.fake.deliveries[0].id


@pytest.mark.timeout(120)
async def test_a_call_retried_after_a_withdrawal_sends_the_same_bytes(
    hand_offs: HandOffs,
    worker: None,
    api: httpx.AsyncClient,
    fake_resend: FakeResendServer,
) -> None:
    """The call of A and the stalled E sends A alone, times out (A went out), and is retried
    while E, handed in again, now waits: the retry still sends A alone (the same bytes under
    the same key: a replay, not a 409 that would leave both `undetermined`), and E goes in
    the next call. Each is sent once."""
    fake = fake_resend.fake
    hand_offs.stalling = {2}
    fake.configure(latency=3.0)  # the first call is in flight while A and E gather
    first = await accepted(api, "/v1/emails", 0)
    await fake.wait_for_deliveries(1, timeout=15)
    fake.configure(latency=0.0)
    fake.enqueue_faults([Fault(hold=6.0)])  # A's call: sent, the answer lost
    a = await accepted(api, "/v1/emails", 1)
    await eventually(lambda: len(hand_offs.emails()) == 2, timeout=10, what="A's hand-off")
    e = await accepted(api, "/v1/emails", 2)
    ended = [await wait_for_status(api, i, *ENDED, timeout=60) for i in (first, a, e)]
    assert [s["status"] for s in ended] == ["sent"] * 3, [s.get("last_error") for s in ended]
    assert len(fake.deliveries) == 3 and fake.duplicates() == []
    _, sent_a, sent_e = ended
    assert sent_a["attempt_count"] == 2 and sent_e["call_id"] != sent_a["call_id"]
    assert hand_offs.handed.count(e) == 2
    statuses = [r.status for r in fake.request_log if r.path == "/emails/batch"]
    assert 409 not in statuses, statuses
