"""A worker killed -9 while the provider has its request in flight: the email goes out once.

The worker is a real `python worker.py` subprocess, killed by its PID. The fake Resend
accepts the email at once and holds its answer, so the dead worker never learns the
outcome; the attempt times out, a new worker retries with the same Idempotency-Key and
gets the provider's replayed answer instead of a second delivery.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from config import Settings
from testkit.fake_resend import FakeResendServer, Fault
from testkit.polling import eventually
from testkit.stack import start_worker, worker_env, worker_proc
from tests.helpers import INVITE, wait_for_status

ATTEMPT_TIMEOUT = 3.0
# Long enough to kill the worker mid-request, short enough that the retry after the
# attempt timeout finds the first request answered (a replay, not a 409 in-flight).
HOLD = 2.0


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"send_attempt_timeout_seconds": ATTEMPT_TIMEOUT})


@pytest.mark.timeout(60)
async def test_worker_killed_mid_send_delivers_exactly_once(
    shards: int,
    api: httpx.AsyncClient,
    fake_resend: FakeResendServer,
    settings: Settings,
    tmp_path: Path,
) -> None:
    fake = fake_resend.fake
    fake.enqueue_faults([Fault(hold=HOLD)])
    env = {**worker_env(settings), "WORKER_METRICS_PORT": "0"}  # no fixed port to collide on
    first = worker_proc(env, tmp_path, "worker-1")
    second = worker_proc(env, tmp_path, "worker-2")
    try:
        await start_worker(first)
        response = await api.post("/v1/invites", json=INVITE)
        assert response.status_code == 202, response.text
        invite_id = response.json()["invite_id"]

        await eventually(lambda: fake.in_flight == 1, timeout=15, what="the held send")
        await first.kill()
        assert fake.delivered_count == 1  # the provider already sent it; nobody knows yet

        await start_worker(second)
        status = await wait_for_status(api, invite_id, "sent", timeout=30)
    finally:
        for proc in (first, second):
            await proc.stop()

    [delivery] = fake.deliveries
    assert fake.duplicates() == []
    assert [a["outcome"] for a in status["attempts"]] == ["timeout", "accepted"]
    # A coalesced call's attempt heartbeats: the dead worker is noticed by its silence, in
    # seconds, not at the end of the attempt's timeout (60 s more, for the claims).
    timeout = "TimeoutHeartbeat" if shards else "TimeoutStartToClose"
    assert status["attempts"][0]["error_type"] == timeout
    assert status["provider_message_id"] == delivery.id
    # Both attempts reached the provider with the same key; the second was a replay.
    path = "/emails/batch" if shards else "/emails"
    sends = [r for r in fake.request_log if r.path == path and r.method == "POST"]
    assert [r.idempotency_key for r in sends] == [delivery.idempotency_key] * 2
    assert [r.status for r in sends] == [200, 200]
