"""Run one scenario against one system and turn what happened into numbers.

A scenario is: reset the fake, sample CPU/RSS, drive load, optionally crash a process
mid-run (and restart it), wait for deliveries to drain, then match the fake's deliveries
to the client's requests by recipient address.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import asdict, dataclass, field
from typing import Any

from bench.load import LoadResult
from bench.sampler import ProcStats, Sampler
from testkit.fake_resend import Delivery, FakeResendProcess
from testkit.polling import ConditionTimeout, eventually
from testkit.procs import Proc

LoadFn = Callable[[Callable[[float], None] | None], Awaitable[LoadResult]]


def log(message: str) -> None:
    """A progress line of the run, on stderr."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of `values`, None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(math.ceil(q / 100 * len(ordered)) - 1, 0)
    return ordered[min(rank, len(ordered) - 1)]


@dataclass
class System:
    """A system under test: where to send invites and the processes that make it up."""

    name: str
    base_url: str
    procs: dict[str, Proc]
    delivers: bool = True
    durable: bool = False
    # Role of the process the crash scenario kills, and how to bring a new one up.
    crash_role: str | None = None
    restart: Callable[[], Coroutine[Any, Any, Proc]] | None = None
    # Waits until the previous scenario's work is finished (our workflows completed).
    settle: Callable[[], Awaitable[None]] | None = None


@dataclass
class Drain:
    """How long to wait for deliveries after the load: stop when all accepted were
    delivered, when nothing new arrived for `stall_s`, or at `cap_s`."""

    cap_s: float
    stall_s: float


@dataclass
class RunResult:
    system: str
    scenario: str
    kind: str
    offered_rate: float | None
    concurrency: int | None
    sent: int
    accepted: int
    rejected: int
    timeouts: int
    conn_errors: int
    api_p50_ms: float | None
    api_p90_ms: float | None
    api_p99_ms: float | None
    api_max_ms: float | None
    accepted_per_s: float
    delivered: int | None
    lost: int | None
    duplicates: int | None
    delivered_per_s: float | None
    accept_to_send_p50_ms: float | None
    accept_to_send_p99_ms: float | None
    delivered_during_load: int | None
    due_during_load: int | None
    second_half_delivery_ratio: float | None
    sustainable: bool | None
    load_seconds: float
    drain_seconds: float
    max_send_lag_ms: float
    provider_statuses: dict[str, int]
    procs: dict[str, ProcStats]
    # Answers the client got that were not 2xx: HTTP status, "timeout" or "conn_error".
    client_errors: dict[str, int] = field(default_factory=dict)
    crashed: str | None = None
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000.0


async def _drain(fake: FakeResendProcess, expected: int, drain: Drain) -> float:
    """Wait for the fake to hold `expected` deliveries, a stall, or the cap; seconds waited."""
    start = time.perf_counter()
    last_count, last_change = -1, start

    async def drained_or_stalled() -> bool:
        nonlocal last_count, last_change
        count, now = await fake.client.delivered_count(), time.perf_counter()
        if count != last_count:
            last_count, last_change = count, now
            return count >= expected
        return count >= expected or now - last_change >= drain.stall_s

    with contextlib.suppress(ConditionTimeout):
        await eventually(drained_or_stalled, timeout=drain.cap_s, interval=0.25, what="drain")
    return time.perf_counter() - start


async def run_scenario(
    system: System,
    scenario: str,
    load: LoadFn,
    *,
    fake: FakeResendProcess,
    drain: Drain,
    extra_procs: dict[str, Proc] | None = None,
    crash_at: float | None = None,
    fake_config: dict[str, Any] | None = None,
) -> RunResult:
    """Drive `load` at `system`, crashing `system.crash_role` at `crash_at` seconds if set.

    The fake is reset first (which restores its start-up config), then `fake_config` applied.
    """
    if system.settle is not None:
        await system.settle()
    await fake.client.reset()
    if fake_config:
        await fake.client.configure(**fake_config)
    sampled: dict[str, Any] = {**system.procs, **(extra_procs or {}), "fake": fake.proc}
    sampled["loadgen"] = Sampler.self_process()
    sampled["others"] = Sampler.OTHERS
    sampler = Sampler(sampled)
    sampler.start()
    crashed: str | None = None
    restart_task: asyncio.Task[Proc] | None = None

    def on_tick(elapsed: float) -> None:
        nonlocal crashed, restart_task
        if crash_at is None or crashed is not None or elapsed < crash_at:
            return
        role = system.crash_role
        assert role is not None and system.restart is not None
        victim = system.procs[role]
        victim.kill9()
        crashed = f"{role} pid {victim.pid} SIGKILL at {elapsed:.1f}s"
        restart_task = asyncio.create_task(system.restart())

    result = await load(on_tick if crash_at is not None else None)
    if restart_task is not None:
        new = await restart_task
        assert system.crash_role is not None
        system.procs[system.crash_role] = new
        sampler.track(system.crash_role, new)
    load_end_wall = time.time()
    sampler.mark()
    accepted = result.accepted
    drain_s = 0.0
    if system.delivers and accepted:
        drain_s = await _drain(fake, len(accepted), drain)
    deliveries = await fake.client.deliveries() if system.delivers else []
    stats = await fake.client.stats()
    procs = await sampler.stop()
    run = summarize(
        system,
        scenario,
        result,
        deliveries,
        load_end_wall=load_end_wall,
        drain_s=drain_s,
        statuses={str(status): n for status, n in sorted(stats.by_status.items())},
        procs=procs,
        crashed=crashed,
    )
    if crash_at is not None or fake_config:
        # A crash or injected faults: "sustained" is not the question there.
        run.sustainable = None
    return run


def summarize(
    system: System,
    scenario: str,
    result: LoadResult,
    deliveries: list[Delivery],
    *,
    load_end_wall: float,
    drain_s: float,
    statuses: dict[str, int],
    procs: dict[str, ProcStats],
    crashed: str | None,
) -> RunResult:
    records = result.records
    accepted = [r for r in records if r.accepted]
    latencies = [r.latency_s for r in records]
    answered_at = [r.due + r.latency_s - result.started for r in accepted]
    accept_window = max(answered_at) if answered_at else result.duration_s
    ours = {r.email for r in records}
    # When the provider received each of our invites' addresses (twice: a duplicate).
    received: dict[str, list[float]] = {}
    for delivery in deliveries:
        for to in delivery.to:
            if to in ours:
                received.setdefault(to, []).append(delivery.received_at_wall)

    delivered = lost = duplicates = None
    delivered_per_s = a2s_p50 = a2s_p99 = None
    during = due = None
    half_ratio: float | None = None
    if system.delivers:
        first = {address: min(times) for address, times in received.items()}
        delivered_accepted = [r for r in accepted if r.email in first]
        delivered = len(delivered_accepted)
        lost = len(accepted) - delivered
        duplicates = sum(len(times) - 1 for times in received.values())
        if first:
            last_wall = max(first.values())
            delivered_per_s = len(first) / max(last_wall - result.started_wall, 1e-9)
        a2s = [first[r.email] - r.sent_wall for r in delivered_accepted]
        a2s_p50, a2s_p99 = percentile(a2s, 50), percentile(a2s, 99)
        # "Delivered while load runs": invites accepted at least 1 s before the load ended
        # that the provider had received by the time it ended.
        due_list = [r for r in accepted if r.sent_wall <= load_end_wall - 1.0]
        due = len(due_list)
        during = sum(1 for r in due_list if r.email in first and first[r.email] <= load_end_wall)
        if result.kind == "open":
            half_ratio = _second_half_ratio(result, accepted, first)

    sustainable: bool | None = None
    if result.kind == "open" and result.offered_rate:
        expected = len(records)
        p99 = percentile(latencies, 99) or 0.0
        sustainable = len(accepted) >= 0.99 * expected and p99 <= 1.0
        if system.delivers:
            sustainable = sustainable and (half_ratio or 0.0) >= 0.95

    return RunResult(
        system=system.name,
        scenario=scenario,
        kind=result.kind,
        offered_rate=result.offered_rate,
        concurrency=result.concurrency,
        sent=len(records),
        accepted=len(accepted),
        rejected=sum(1 for r in records if r.status >= 300),
        timeouts=sum(1 for r in records if r.status == 0),
        conn_errors=sum(1 for r in records if r.status == -1),
        api_p50_ms=_ms(percentile(latencies, 50)),
        api_p90_ms=_ms(percentile(latencies, 90)),
        api_p99_ms=_ms(percentile(latencies, 99)),
        api_max_ms=_ms(max(latencies) if latencies else None),
        accepted_per_s=len(accepted) / max(accept_window, 1e-9),
        delivered=delivered,
        lost=lost,
        duplicates=duplicates,
        delivered_per_s=delivered_per_s,
        accept_to_send_p50_ms=_ms(a2s_p50),
        accept_to_send_p99_ms=_ms(a2s_p99),
        delivered_during_load=during,
        due_during_load=due,
        second_half_delivery_ratio=half_ratio,
        sustainable=sustainable,
        load_seconds=result.duration_s,
        drain_seconds=drain_s,
        max_send_lag_ms=result.max_send_lag_s * 1000.0,
        provider_statuses=statuses,
        procs=procs,
        crashed=crashed,
        client_errors=_client_errors(records),
    )


def _client_errors(records: list[Any]) -> dict[str, int]:
    names = {0: "timeout", -1: "conn_error"}
    counts = Counter(names.get(r.status, str(r.status)) for r in records if not r.accepted)
    return dict(counts.most_common())


def _second_half_ratio(
    result: LoadResult, accepted: list[Any], first: dict[str, float]
) -> float | None:
    """Deliveries per accepted invite over the second half of the arrival window.

    1.0 means deliveries keep pace with arrivals (backlog flat); below 1 the backlog grows.
    """
    assert result.offered_rate
    span = len(result.records) / result.offered_rate
    lo, hi = result.started_wall + span / 2, result.started_wall + span
    accepted_in = sum(1 for r in accepted if lo <= r.sent_wall < hi)
    delivered_in = sum(1 for received_wall in first.values() if lo <= received_wall < hi)
    return delivered_in / accepted_in if accepted_in else None
