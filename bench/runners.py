"""Carry out the programs of `bench/scenarios.py` on the systems of `bench/stack.py`.

`Bench` holds one run's results; each group (baselines, our stack, its ceiling, the
provider-limit and scheduled probes) is a small function of it.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from temporalio.client import Client

from bench import bulk, load
from bench.measure import RunResult, System, log, percentile, run_scenario
from bench.minimal_workflow import TASK_QUEUE as MINIMAL_TASK_QUEUE
from bench.sampler import Sampler
from bench.scenarios import (
    BASELINES,
    OURS,
    Baseline,
    OpenLoop,
    Plan,
    RateSearch,
    Scenario,
    Step,
    baseline_program,
    our_program,
    rate_limited,
)
from bench.stack import (
    OUR_TASK_QUEUE,
    WORKFLOW,
    backlog,
    baseline_env,
    our_env,
    start_dev_server,
    start_minimal_worker,
    start_our_api,
    start_our_worker,
    start_probe,
    start_uvicorn,
    workflows_idle,
)
from infra.codec import new_codec_key
from testkit.dev_server import DevServer
from testkit.fake_resend import FakeResendProcess
from testkit.polling import ConditionTimeout, eventually
from testkit.procs import Proc


@dataclass
class Bench:
    """One run: its plan, the fake every system sends to, and what it measured."""

    plan: Plan
    out_dir: Path
    fake: FakeResendProcess
    server_args: list[str] = field(default_factory=list)
    # Shared by our API and every worker of the run: payloads are encrypted, as `make dev` does.
    codec_key: str = field(default_factory=lambda: new_codec_key("bench-1"))
    runs: list[RunResult] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    probes: dict[str, Any] = field(default_factory=dict)
    _tags: int = 0

    @property
    def log_dir(self) -> Path:
        return self.out_dir / "logs"

    def tag(self, label: str) -> str:
        """A recipient prefix of its own for each scenario."""
        self._tags += 1
        return f"s{self._tags}-{label}"

    def record(self, run: RunResult) -> RunResult:
        self.runs.append(run)
        flat = "" if run.sustainable is None else f" flat={run.sustainable}"
        log(
            f"{run.system} {run.scenario}: {run.accepted}/{run.sent} 2xx, "
            f"p99 {run.api_p99_ms or 0:.1f} ms, {run.accepted_per_s:.1f}/s, "
            f"delivered {run.delivered} lost {run.lost} dup {run.duplicates}{flat}"
        )
        return run

    async def guarded(self, what: str, step: Callable[[], Awaitable[None]]) -> None:
        """Run one group; a failure is reported in the results instead of ending the run."""
        try:
            await step()
        except Exception as exc:
            self.errors.append(f"{what}: {type(exc).__name__}: {exc}")
            log(f"{what} failed:\n{traceback.format_exc()}")

    def our_env(self, server: DevServer, rate_limit: float) -> dict[str, str]:
        outbox = self.out_dir / "outbox"
        env = our_env(server, self.fake.url, rate_limit, outbox, self.codec_key)
        return {**env, **self.plan.our_extra_env}


# -- programs of scenarios -------------------------------------------------------------------

SystemFor = Callable[[], Awaitable[System]]


async def run_on(bench: Bench, system: System, scenario: Scenario) -> RunResult:
    """Drive one scenario's load at `system` and record what happened."""
    tag = bench.tag(scenario.name.split()[0])
    invites = load.Invites(system.base_url, tag, bench.plan.client_timeout_s)
    spec = scenario.load

    async def drive(on_tick: Callable[[float], None] | None) -> load.LoadResult:
        if isinstance(spec, OpenLoop):
            return await load.open_loop(
                invites, rate=spec.rate, seconds=spec.seconds, on_tick=on_tick
            )
        return await load.closed_loop(
            invites, count=spec.count, concurrency=spec.concurrency, max_seconds=spec.max_s
        )

    run = await run_scenario(
        system,
        scenario.name,
        drive,
        fake=bench.fake,
        drain=scenario.drain,
        crash_at=scenario.crash_at,
        fake_config=scenario.fake_config,
    )
    return bench.record(run)


async def search_rate(bench: Bench, search: RateSearch, system_for: SystemFor) -> None:
    """Step up until a rate is not sustained, then bisect between the last two."""

    async def sustained(rate: float) -> bool:
        return bool((await run_on(bench, await system_for(), search.at(rate))).sustainable)

    good, bad = 0.0, None
    for rate in search.rates:
        if await sustained(rate):
            good = rate
        else:
            bad = rate
            break
    for _ in range(search.bisect_steps if bad is not None and good else 0):
        assert bad is not None
        middle = round((good + bad) / 2)
        if middle in (good, bad):
            break
        if await sustained(middle):
            good = middle
        else:
            bad = middle


async def run_program(bench: Bench, steps: list[Step], system_for: SystemFor) -> None:
    """Each step on the system `system_for()` gives (a fresh process, or a running stack)."""
    for step in steps:
        if isinstance(step, Scenario):
            await run_on(bench, await system_for(), step)
        else:
            await search_rate(bench, step, system_for)


# -- baselines -------------------------------------------------------------------------------


async def baselines(bench: Bench) -> None:
    for baseline in BASELINES:
        await bench.guarded(f"baseline {baseline.name}", partial(run_baseline, bench, baseline))


async def run_baseline(bench: Bench, baseline: Baseline) -> None:
    """A fresh process per scenario, SIGKILLed after it: what it still holds in memory at the
    end of the drain window is lost, and a blocked server still working through one
    scenario's queue cannot leak into the next."""
    env = baseline_env(bench.fake.url)
    running: list[System] = []

    async def fresh() -> System:
        while running:
            running.pop().procs["api"].kill9()
        proc, url = await start_uvicorn(baseline.name, baseline.module, bench.log_dir, env)
        port = int(url.rsplit(":", 1)[1])

        async def restart() -> Proc:
            new, _ = await start_uvicorn(
                baseline.name, baseline.module, bench.log_dir, env, port=port
            )
            return new

        system = System(
            baseline.name,
            url,
            {"api": proc},
            delivers=baseline.delivers,
            crash_role="api",
            restart=restart,
        )
        running.append(system)
        return system

    try:
        await run_program(bench, baseline_program(bench.plan, baseline), fresh)
    finally:
        while running:
            running.pop().procs["api"].kill9()


# -- our stack -------------------------------------------------------------------------------


async def our_stack(bench: Bench, only: set[str]) -> None:
    """One dev server on a SQLite file for the ceiling probes and all of our scenarios."""
    db_dir = Path(tempfile.mkdtemp(prefix="bench-temporal-"))
    try:
        start = time.perf_counter()
        server = await start_dev_server(bench.log_dir, db_dir / "temporal.db", bench.server_args)
        bench.extra["dev server ready in"] = f"{time.perf_counter() - start:.2f} s"
        client = await Client.connect(server.address)
        if "ceiling" in only:
            await bench.guarded("ceiling", partial(ceiling, bench, client, server))
        if only & {"ours", "ratelimit", "scheduled", "batch"}:
            await bench.guarded("our stack", partial(ours, bench, client, server, only))
        await server.stop()
        if "fairness" in only:
            await bench.guarded("fairness", partial(bulk.fairness, bench))
    finally:
        shutil.rmtree(db_dir, ignore_errors=True)


async def ours(bench: Bench, client: Client, server: DevServer, only: set[str]) -> None:
    env = bench.our_env(server, rate_limit=1000.0)
    worker = await start_our_worker(client, bench.log_dir, env)
    api, url = await start_our_api(bench.log_dir, env)
    restarts = 0

    async def restart_worker() -> Proc:
        nonlocal restarts
        restarts += 1
        return await start_our_worker(client, bench.log_dir, env, name=f"worker{restarts}")

    async def settle() -> None:
        """Start each scenario on an idle stack: every email of the last one recorded as
        sent. (Sent invites stay open for the delivery webhook, 72 h by default, so
        "no running workflow" never comes.)"""
        try:
            await workflows_idle(client)
        except ConditionTimeout as exc:
            bench.errors.append(f"settle: {exc}")

    system = System(
        OURS,
        url,
        {"api": api, "worker": worker, "temporal_server": server.proc},
        durable=True,
        crash_role="worker",
        restart=restart_worker,
        settle=settle,
    )

    async def same() -> System:
        return system

    # Warm-up (first connections, caches); not reported.
    await bench.fake.client.reset()
    warmup = load.Invites(url, "warmup")
    await load.closed_loop(warmup, count=20, concurrency=5, max_seconds=10)
    await bench.fake.client.wait_for_deliveries(20, timeout=30)

    if "ours" in only:
        await run_program(bench, our_program(bench.plan), same)
    if "ratelimit" in only:
        await bench.guarded("rate limit", partial(provider_limit, bench, client, server, system))
    if "scheduled" in only:
        await bench.guarded("scheduled", partial(scheduled, bench, client, server, system))
    if "batch" in only:
        await bench.guarded("bulk", partial(bulk.bulk_sends, bench, client, server, system))
    for proc in system.procs.values():
        if proc is not server.proc:
            await proc.stop()


async def provider_limit(bench: Bench, client: Client, server: DevServer, system: System) -> None:
    """Our worker and the fake both at the provider's limit: rate held, and no 429."""
    plan = bench.plan
    await system.procs["worker"].stop()
    env = bench.our_env(server, rate_limit=plan.ratelimit)
    system.procs["worker"] = await start_our_worker(client, bench.log_dir, env, "worker_rl")
    run = await run_on(bench, system, rate_limited(plan))
    times = sorted(d.received_at_wall for d in await bench.fake.client.deliveries())
    sustained = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0
    bench.probes["ratelimit"] = {
        "limit_per_s": plan.ratelimit,
        "sustained_per_s": sustained,
        "deliveries": len(times),
        "status_429": run.provider_statuses.get("429", 0),
        "provider_statuses": run.provider_statuses,
    }
    bench.extra["provider-limited send rate"] = (
        f"{sustained:.2f}/s sustained against a {plan.ratelimit:g}/s limit "
        f"({len(times)} sends, {run.provider_statuses.get('429', 0)} × 429)"
    )


async def scheduled(bench: Bench, client: Client, server: DevServer, system: System) -> None:
    """Worker memory with N invites scheduled a day ahead (`send_at`): each workflow
    waits on a durable timer, cached in the worker (up to its max_cached_workflows)."""
    plan = bench.plan
    await system.procs["worker"].stop()
    env = bench.our_env(server, 1000.0)
    worker = await start_our_worker(client, bench.log_dir, env, "worker_s")
    system.procs["worker"] = worker
    idle_rss = worker.ps.memory_info().rss / 1e6
    sampler = Sampler({"worker": worker, "api": system.procs["api"]})
    sampler.start()
    tag = bench.tag("scheduled")
    send_at = (datetime.now(UTC) + timedelta(days=1)).isoformat().replace("+00:00", "Z")
    # Two steps, so the per-send cost is a slope, not the first workflow's module imports.
    first = max(plan.scheduled_count // 10, 10)
    points: list[tuple[int, float]] = []
    accepted = 0
    accept_seconds = 0.0
    for index, count in ((0, first), (first, plan.scheduled_count - first)):
        # Paced under the API's own per-key limit (200/s by default): a closed loop
        # would be answered 429 for part of it.
        invites = load.Invites(
            system.base_url, tag, plan.client_timeout_s, index, {"send_at": send_at}
        )
        result = await load.open_loop(
            invites, rate=plan.scheduled_rate, seconds=count / plan.scheduled_rate
        )
        accepted += len(result.accepted)
        accept_seconds += result.duration_s
        waited = await worker_caught_up(client, worker)
        points.append((accepted, worker.ps.memory_info().rss / 1e6))
        log(
            f"scheduled {accepted}: accepted in {result.duration_s:.0f}s, worker caught up "
            f"{waited:.0f}s later, RSS {points[-1][1]:.0f} MB"
        )
    stats = await sampler.stop()
    (n1, rss1), (n2, rss2) = points
    per_send_kb = (rss2 - rss1) * 1000 / max(n2 - n1, 1)
    bench.probes["scheduled"] = {
        "accepted": accepted,
        "accept_per_s": accepted / accept_seconds,
        "worker_rss_idle_mb": idle_rss,
        "worker_rss_points": points,
        "worker_rss_peak_mb": stats["worker"].rss_max_mb,
        "kb_per_waiting_send": per_send_kb,
        "api_cpu": stats["api"].cpu_load,
        "worker_cpu": stats["worker"].cpu_load,
    }
    bench.extra[f"worker memory with {accepted} sends scheduled a day ahead"] = (
        f"{rss2:.0f} MB RSS (idle {idle_rss:.0f} MB, {rss1:.0f} MB at {n1}; "
        f"{per_send_kb:.1f} kB per waiting send); accepted at "
        f"{accepted / accept_seconds:.0f}/s"
    )


async def worker_caught_up(client: Client, worker: Proc) -> float:
    """Wait until the worker has run every workflow task: no backlog on its queue and
    the worker idle (< 5% CPU) for 3 s in a row (the backlog count alone lags).
    Returns the seconds it took."""
    started = time.perf_counter()
    quiet = 0
    worker.ps.cpu_percent(None)

    async def caught_up() -> bool:
        nonlocal quiet
        idle = worker.ps.cpu_percent(None) < 5.0
        empty = await backlog(client, OUR_TASK_QUEUE, WORKFLOW) == 0
        quiet = quiet + 1 if idle and empty else 0
        return quiet >= 3

    await eventually(caught_up, timeout=240, what="worker caught up", interval=1.0)
    return time.perf_counter() - started


# -- ceilings of the server itself -----------------------------------------------------------


async def ceiling(bench: Bench, client: Client, server: DevServer) -> None:
    """Bare `start_workflow` calls from one process, and a one-activity workflow's
    completions per second, on the same dev server (no HTTP, no provider)."""
    worker = await start_minimal_worker(client, server, bench.log_dir)
    n = bench.plan.probe_count
    running = f"TaskQueue='{MINIMAL_TASK_QUEUE}' AND ExecutionStatus='Running'"

    async def idle() -> bool:
        return (await client.count_workflows(running)).count == 0

    for mode in ("starts", "starts_like_api", "throughput"):
        # Each probe on an idle server: the last one's workflows all completed.
        await eventually(idle, timeout=120, what="bench workflows completed", interval=0.25)
        result = await probe(bench, mode, server, n, {"minimal_worker": worker})
        lat = result.pop("latencies_s")
        result["p50_ms"] = (percentile(lat, 50) or 0.0) * 1000
        result["p99_ms"] = (percentile(lat, 99) or 0.0) * 1000
        bench.probes[mode] = result
        log(f"probe {mode}: {result['rate']:.1f}/s p50 {result['p50_ms']:.1f} ms")
    await worker.stop()
    starts, done = bench.probes["starts"], bench.probes["throughput"]
    like = bench.probes["starts_like_api"]
    bench.extra["raw start_workflow ceiling"] = (
        f"{starts['rate']:.0f} starts/s ({n} at c50, p50 {starts['p50_ms']:.0f} ms, "
        f"p99 {starts['p99_ms']:.0f} ms; procs {starts['procs']})"
    )
    bench.extra["start_workflow with our API's options (memo, 2 search attributes)"] = (
        f"{like['rate']:.0f} starts/s (p50 {like['p50_ms']:.0f} ms, "
        f"p99 {like['p99_ms']:.0f} ms; procs {like['procs']})"
    )
    bench.extra["one-activity workflow throughput"] = (
        f"{done['rate']:.1f} workflows/s completed ({n} at c50; procs {done['procs']})"
    )


async def probe(
    bench: Bench, mode: str, server: DevServer, count: int, others: dict[str, Proc]
) -> dict[str, Any]:
    args = ["--count", str(count), "--concurrency", str(bench.plan.closed_concurrency)]
    proc = start_probe(mode, server, bench.log_dir, args)
    sampler = Sampler({"probe": proc, "temporal_server": server.proc, **others})
    sampler.start()
    line = await proc.read_line(timeout=300)
    stats = await sampler.stop()
    await proc.stop()
    result: dict[str, Any] = json.loads(line)
    result["procs"] = ", ".join(
        f"{name} {s.cpu_load:.0f}%/{s.rss_max_mb:.0f}MB" for name, s in stats.items()
    )
    return result
