"""Chaos: a burst of 300 invites while processes die and the provider misbehaves.

Each scenario runs its own dev server, worker(s) and API(s) as real processes on loopback,
sends 300 invites through the HTTP API (retrying 503s with the same Idempotency-Key, as a
real client would), injects its fault, and then checks the fake provider's count: every
accepted invite delivered exactly once, nothing lost, nothing twice, nothing delivered
that the API did not accept.

Run with `make chaos`; `make test` leaves these out (marker `chaos`).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from testkit.fake_resend import FakeResend, Fault
from testkit.polling import eventually
from testkit.stack import start_worker

from .load import HEADERS, Answer, LoadClient
from .report import ChaosReport, Figures
from .stack import ONE_CALL_PER_EMAIL, Stack, StackFactory

# Hard cap per scenario; a healthy one takes 15-30 s on 2 cores.
pytestmark = [pytest.mark.chaos, pytest.mark.timeout(240)]

INVITES = 300
RATE = 40.0  # invites started per second: the burst lasts ~7.5 s
CONCURRENCY = 30
SETTLE_TIMEOUT = 150.0
OUTAGE_SECONDS = 5.0
# The API fails fast while Temporal is down (RPC timeout 5 s, short connect retries).
MAX_503_SECONDS = 6.0
UNSENT = 'ExecutionStatus="Running" AND EmailStatus!="sent"'
FAILED = 'ExecutionStatus!="Running" AND ExecutionStatus!="Completed"'

Chaos = Callable[[LoadClient], Awaitable[dict[str, Any]]]


async def run_scenario(
    name: str, stack: Stack, report: ChaosReport, chaos: Chaos
) -> tuple[Figures, LoadClient]:
    """Send the burst while `chaos` runs, wait for the dust to settle, record the figures."""
    fake = stack.fake_server.fake
    load = LoadClient(stack.api_urls, run=f"{name}-{uuid.uuid4().hex[:8]}")
    started = time.monotonic()
    burst = asyncio.create_task(load.burst(INVITES, rate=RATE, concurrency=CONCURRENCY))
    try:
        notes = await chaos(load)
        await asyncio.wait_for(asyncio.shield(burst), timeout=120)
    finally:
        if not burst.done():
            burst.cancel()
        await load.aclose()
    await settle(stack, set(load.result.accepted))
    figures = figures_of(name, load, fake, time.monotonic() - started, notes)
    report.add(figures)
    return figures, load


async def settle(stack: Stack, accepted: set[str]) -> None:
    """Wait until every accepted invite was delivered and no workflow is still running."""
    fake = stack.fake_server.fake
    client = await stack.client()

    async def done() -> bool:
        delivered = {address for d in fake.deliveries for address in d.to}
        if not accepted <= delivered:
            return False
        # A sent invite stays open for the provider's delivery events: settled means that
        # no open workflow is still before "sent" (none will call the provider again).
        unsent = await client.count_workflows(UNSENT)
        return unsent.count == 0

    try:
        await eventually(done, timeout=SETTLE_TIMEOUT, what="all accepted invites", interval=0.5)
    except AssertionError as err:
        missing = sorted(accepted - {a for d in fake.deliveries for a in d.to})
        tails = "\n".join(f"--- {p.name}\n{p.log_tail(15)}" for p in [*stack.workers, *stack.apis])
        raise AssertionError(
            f"{err}; {len(missing)} undelivered, e.g. {missing[:5]}\n{tails}"
        ) from None
    failed = await client.count_workflows(FAILED)
    assert failed.count == 0, f"{failed.count} workflows failed or were terminated"


def figures_of(
    name: str, load: LoadClient, fake: FakeResend, elapsed: float, notes: dict[str, Any]
) -> Figures:
    result = load.result
    return Figures.of(
        name, INVITES, fake, set(result.accepted), elapsed, notes,
        api_503=result.unavailable,
        api_no_answer=result.no_answer,
        api_other_errors=result.other_errors,
        replayed_202=result.replayed,
    )  # fmt: skip


def assert_exactly_once(figures: Figures, load: LoadClient) -> None:
    assert load.result.gave_up == set(), f"never accepted: {sorted(load.result.gave_up)[:5]}"
    assert figures.api_other_errors == 0, load.result.status_counts
    assert figures.accepted == INVITES
    assert figures.lost == 0
    assert figures.duplicates == 0
    assert figures.unaccepted_delivered == 0
    assert figures.delivered == figures.accepted


async def test_burst_survives_worker_killed_and_restarted(
    stack_factory: StackFactory, chaos_report: ChaosReport
) -> None:
    stack = await stack_factory()
    fake = stack.fake_server.fake
    fake.configure(latency=0.3)  # so that some sends are in flight when the worker dies
    [worker] = stack.workers

    async def kill_worker_mid_burst(load: LoadClient) -> dict[str, Any]:
        await eventually(lambda: fake.delivered_count >= 60, timeout=60, what="60 deliveries")
        in_flight = fake.in_flight
        delivered_at_kill = fake.delivered_count
        await worker.kill()
        assert in_flight > 0, "no send was in flight when the worker was killed"
        # The API keeps accepting with no worker at all: the invites wait in Temporal.
        await eventually(
            lambda: len(load.result.accepted) >= delivered_at_kill + 100,
            timeout=30,
            what="100 more accepted while the worker is dead",
        )
        accepted_while_dead = len(load.result.accepted) - delivered_at_kill
        await start_worker(worker)
        return {
            "delivered_at_kill": delivered_at_kill,
            "in_flight_at_kill": in_flight,
            "accepted_beyond_delivered_while_dead": accepted_while_dead,
        }

    figures, load = await run_scenario("worker kill -9", stack, chaos_report, kill_worker_mid_burst)
    assert_exactly_once(figures, load)


@dataclass
class Outage:
    """When the dev server was down, and what fresh invites sent meanwhile got."""

    down_from: float
    down_until: float
    probes: list[int | None]

    def answers_while_down(self, load: LoadClient) -> list[Answer]:
        return [
            a
            for a in load.result.answers
            if a.sent_at >= self.down_from and a.answered_at <= self.down_until
        ]


async def temporal_outage(stack: Stack, load: LoadClient, *, seconds: float) -> Outage:
    """Kill -9 the dev server, probe the APIs while it is down, restart it on the same db."""
    await stack.temporal.kill()
    down_from = time.monotonic()
    probes = []
    for n, api_url in enumerate(stack.api_urls * 3):
        address = f"probe{n}@probe.chaos.example"
        probes.append(await load.post_invite(api_url, address, f"probe-{load.run}-{n}"))
    # The outage lasts `seconds`: a chosen length, not a wait for something to happen.
    await asyncio.sleep(max(0.0, down_from + seconds - time.monotonic()))
    down_until = time.monotonic()
    await stack.restart_temporal()
    return Outage(down_from, down_until, probes)


def assert_refused_while_down(outage: Outage, load: LoadClient) -> float:
    """Every invite answered during the outage got 503, promptly; returns the slowest."""
    assert outage.probes == [503] * len(outage.probes)
    answered = outage.answers_while_down(load)
    assert len(answered) >= len(outage.probes)
    assert Counter(a.status for a in answered) == {503: len(answered)}
    slowest = max(a.answered_at - a.sent_at for a in answered)
    assert slowest < MAX_503_SECONDS, f"a 503 took {slowest:.1f}s"
    return slowest


async def test_burst_survives_temporal_killed_and_restarted_on_same_db(
    stack_factory: StackFactory, chaos_report: ChaosReport
) -> None:
    stack = await stack_factory()
    outages: list[Outage] = []

    async def kill_server_mid_burst(load: LoadClient) -> dict[str, Any]:
        await eventually(lambda: len(load.result.accepted) >= 100, timeout=60, what="100 accepted")
        outages.append(await temporal_outage(stack, load, seconds=OUTAGE_SECONDS))
        return {"down_s": round(outages[0].down_until - outages[0].down_from, 1)}

    figures, load = await run_scenario(
        "temporal kill -9", stack, chaos_report, kill_server_mid_burst
    )
    slowest = assert_refused_while_down(outages[0], load)
    figures.notes["slowest_503_s"] = round(slowest, 2)
    chaos_report.save()
    assert figures.api_503 >= 30  # the load itself met the outage, not only the probes
    assert_exactly_once(figures, load)


async def test_burst_survives_provider_500_on_half_the_requests_for_10s(
    stack_factory: StackFactory, chaos_report: ChaosReport
) -> None:
    stack = await stack_factory(extra_env=ONE_CALL_PER_EMAIL)
    fake = stack.fake_server.fake

    async def errors_for_10s(load: LoadClient) -> dict[str, Any]:
        fake.configure(error_rate=0.5, error_status=500)
        started = time.monotonic()
        # At least 10 s, and until the burst has met 50 failures: on a loaded machine the
        # sends reach the provider more slowly, and a fixed 10 s may catch only a few.
        await asyncio.sleep(10)  # the outage's minimum length, not a wait for anything
        await eventually(
            lambda: fake.requests_by_status.get(500, 0) >= 50,
            timeout=120,
            what="50 provider 500s during the outage",
        )
        fake.configure(error_rate=0.0)
        return {"outage_s": round(time.monotonic() - started, 1)}

    figures, load = await run_scenario("provider 500 x50% 10s", stack, chaos_report, errors_for_10s)
    assert fake.requests_by_status.get(500, 0) >= 50
    assert_exactly_once(figures, load)


async def test_burst_survives_provider_holding_requests_past_attempt_timeout(
    stack_factory: StackFactory, chaos_report: ChaosReport
) -> None:
    # The HTTP timeout (10 s) outlasts the attempt (3 s): the activity itself times out.
    stack = await stack_factory(resend_timeout=10.0, extra_env=ONE_CALL_PER_EMAIL)
    fake = stack.fake_server.fake
    held = 20

    async def hold_some(load: LoadClient) -> dict[str, Any]:
        await eventually(lambda: fake.delivered_count >= 30, timeout=60, what="30 deliveries")
        fake.enqueue_faults([Fault(hold=5.0)] * held)
        await eventually(lambda: fake.pending_faults == 0, timeout=60, what="held faults consumed")
        return {"held": held}

    figures, load = await run_scenario("provider holds 5s > 3s", stack, chaos_report, hold_some)
    assert_exactly_once(figures, load)
    # Each held send was retried under the same key after its attempt timed out, and the
    # provider replayed its first answer: more 200 answers than deliveries.
    retried = [k for k, n in Counter(r.idempotency_key for r in fake.request_log).items() if n > 1]
    assert len(retried) >= held
    statuses = await attempts_of(stack, retried[:held])
    timed_out = [s for s in statuses if s[0] == "timeout" and s[-1] == "accepted"]
    assert len(timed_out) == held, statuses
    figures.notes["timed_out_then_accepted"] = len(timed_out)
    chaos_report.save()


async def attempts_of(stack: Stack, idempotency_keys: list[str | None]) -> list[list[str]]:
    """The attempt outcomes of the invites sent with these provider idempotency keys."""
    outcomes = []
    async with httpx.AsyncClient(base_url=stack.api_urls[0], headers=HEADERS) as api:
        for key in idempotency_keys:
            assert key is not None and key.startswith("invite-") and key.endswith("/send")
            invite_id = "inv_" + key.removeprefix("invite-").removesuffix("/send")
            body = (await api.get(f"/v1/emails/{invite_id}")).json()
            outcomes.append([a["outcome"] for a in body["attempts"]])
    return outcomes


async def test_burst_survives_provider_429_with_retry_after(
    stack_factory: StackFactory, chaos_report: ChaosReport
) -> None:
    stack = await stack_factory()
    fake = stack.fake_server.fake
    limited = 100

    async def rate_limit(load: LoadClient) -> dict[str, Any]:
        fake.enqueue_faults([Fault(status=429, retry_after=2)] * limited)
        return {"limited": limited}

    figures, load = await run_scenario(
        "provider 429 retry-after 2", stack, chaos_report, rate_limit
    )
    assert fake.requests_by_status.get(429, 0) == limited
    assert_exactly_once(figures, load)


async def test_two_workers_and_two_apis_deliver_everything_once(
    stack_factory: StackFactory, chaos_report: ChaosReport
) -> None:
    stack = await stack_factory(workers=2, apis=2, extra_env=ONE_CALL_PER_EMAIL)
    fake = stack.fake_server.fake

    async def some_errors(load: LoadClient) -> dict[str, Any]:
        # Failed attempts are retried by whichever worker polls next.
        fake.configure(error_rate=0.2, error_status=500)
        return {"provider_error_rate": 0.2}

    figures, load = await run_scenario("2 workers + 2 APIs", stack, chaos_report, some_errors)
    assert_exactly_once(figures, load)
    per_api = Counter(a.api_url for a in load.result.answers if a.status == 202)
    assert set(per_api) == set(stack.api_urls), per_api
    sends = [p.log_since_start().count("send attempt") for p in stack.workers]
    assert all(n > 0 for n in sends), f"attempts per worker: {sends}"
    figures.notes.update(accepted_per_api=list(per_api.values()), attempts_per_worker=sends)
    chaos_report.save()


async def test_everything_at_once_delivers_every_invite_once(
    stack_factory: StackFactory, chaos_report: ChaosReport
) -> None:
    """Two workers and two APIs; 500s, 429s, held answers, a worker and the server killed."""
    stack = await stack_factory(
        workers=2, apis=2, resend_timeout=10.0, extra_env=ONE_CALL_PER_EMAIL
    )
    fake = stack.fake_server.fake
    outages: list[Outage] = []

    async def everything(load: LoadClient) -> dict[str, Any]:
        fake.configure(error_rate=0.5, error_status=500)
        fake.enqueue_faults([Fault(status=429, retry_after=2), Fault(hold=5.0)] * 15)
        await eventually(lambda: fake.delivered_count >= 40, timeout=60, what="40 deliveries")
        worker = stack.workers[0]
        await worker.kill()
        accepted_at_kill = len(load.result.accepted)
        # On a slow machine the paced burst may be nearly all accepted by now: 30 more, or
        # all of it, whichever comes first.
        await eventually(
            lambda: len(load.result.accepted) >= min(accepted_at_kill + 30, INVITES),
            timeout=30,
            what="30 more accepted (or the whole burst) with one worker dead",
        )
        await start_worker(worker)
        await eventually(lambda: len(load.result.accepted) >= 180, timeout=60, what="180 accepted")
        outages.append(await temporal_outage(stack, load, seconds=OUTAGE_SECONDS))
        fake.configure(error_rate=0.0)
        return {"down_s": round(outages[0].down_until - outages[0].down_from, 1)}

    figures, load = await run_scenario("everything at once", stack, chaos_report, everything)
    figures.notes["slowest_503_s"] = round(assert_refused_while_down(outages[0], load), 2)
    chaos_report.save()
    assert fake.requests_by_status.get(429, 0) >= 15
    assert fake.requests_by_status.get(500, 0) >= 30
    assert_exactly_once(figures, load)
