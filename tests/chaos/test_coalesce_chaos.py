"""Chaos with coalescing on: the burst of 300 invites shares provider batch calls while the
worker is killed -9 mid-burst and the provider answers 500s and holds answers past the
attempt timeout. Every accepted invite delivered exactly once (`make chaos`, marker chaos)."""

from __future__ import annotations

from typing import Any

import pytest

from testkit.fake_resend import Fault
from testkit.polling import eventually
from testkit.stack import start_worker

from .load import LoadClient
from .report import ChaosReport
from .stack import StackFactory
from .test_chaos import assert_exactly_once, run_scenario

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(240)]


async def test_coalesced_burst_survives_worker_kill_500s_and_timeouts(
    stack_factory: StackFactory, chaos_report: ChaosReport
) -> None:
    stack = await stack_factory(extra_env={"COALESCE_SHARDS": "2"})
    fake = stack.fake_server.fake
    fake.configure(latency=0.3)  # so that a call is in flight when the worker dies
    [worker] = stack.workers

    async def chaos(load: LoadClient) -> dict[str, Any]:
        await eventually(lambda: fake.delivered_count >= 30, timeout=60, what="30 deliveries")
        fake.enqueue_faults([Fault(status=500), Fault(hold=5.0), Fault(status=500)])
        await eventually(lambda: fake.pending_faults == 0, timeout=30, what="faults consumed")
        in_flight = fake.in_flight
        delivered_at_kill = fake.delivered_count
        await worker.kill()
        await eventually(
            lambda: len(load.result.accepted) >= min(delivered_at_kill + 60, 300),
            timeout=30,
            what="60 more accepted while the worker is dead",
        )
        await start_worker(worker)
        return {
            "delivered_at_kill": delivered_at_kill,
            "in_flight_at_kill": in_flight,
            "provider_requests": fake.requests_total,
        }

    figures, load = await run_scenario(
        "coalesced: kill -9, 500s, holds", stack, chaos_report, chaos
    )
    assert_exactly_once(figures, load)
    # Shared calls: far fewer provider requests than invites (retries included).
    assert fake.requests_total < 150, fake.requests_total
