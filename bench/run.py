"""Benchmark durable-mail against the designs our users came from, on this machine.

    python -m bench.run                      # everything, ~10 minutes on 2 cores
    python -m bench.run --quick              # a smaller version (~1-2 minutes), a smoke test
    python -m bench.run --quick --only baselines

Writes bench/results/<timestamp>/{results.json,results.md,chart.png,logs/} and prints the
markdown. Every process it starts runs on 127.0.0.1 and is stopped by PID at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
from temporalio.client import Client

from bench import load
from bench.fake import FAKE_API_KEY, FakeResend
from bench.measure import Drain, RunResult, System, percentile, run_scenario
from bench.minimal_workflow import TASK_QUEUE as MINIMAL_TASK_QUEUE
from bench.procs import (
    PYTHON,
    ROOT,
    STARTED,
    BenchError,
    Proc,
    Sampler,
    read_line,
    spawn,
    stop_all,
    wait_until,
)
from bench.report import Target, chart, markdown
from bench.stack import (
    OUR_TASK_QUEUE,
    WORKFLOW,
    DevServer,
    backlog,
    new_codec_key,
    our_env,
    start_minimal_worker,
    start_our_worker,
    start_uvicorn,
)

GROUPS = ("baselines", "ours", "ceiling", "ratelimit", "scheduled")


@dataclass
class Plan:
    """Sizes of every scenario; `FULL` and `QUICK` below."""

    latency: float = 2.0
    client_timeout_s: float = 10.0
    closed_count: int = 2000
    closed_concurrency: int = 50
    closed_max_s: float = 12.0
    baseline_rates: list[float] = field(default_factory=lambda: [25, 100, 400])
    baseline_open_s: float = 5.0
    crash_rate: float = 25.0
    crash_s: float = 6.0
    crash_at: float = 3.0
    baseline_drain: Drain = field(default_factory=lambda: Drain(cap_s=15.0, stall_s=4.0))
    low_rate: float = 5.0
    low_s: float = 6.0
    steady_rate: float = 20.0
    steady_s: float = 15.0
    our_rates: list[float] = field(default_factory=lambda: [25, 40, 60, 80, 120])
    our_open_s: float = 6.0
    our_bisect_steps: int = 2
    ours_closed_max_s: float = 60.0
    our_drain: Drain = field(default_factory=lambda: Drain(cap_s=120.0, stall_s=20.0))
    burst_count: int = 600
    probe_count: int = 600
    # A send whose worker died is retried after its attempt timeout (30 s by default).
    our_crash_drain: Drain = field(default_factory=lambda: Drain(cap_s=90.0, stall_s=45.0))
    flaky_error_rate: float = 0.1
    ratelimit_count: int = 30
    ratelimit: float = 2.0
    scheduled_count: int = 10_000
    scheduled_rate: float = 150.0
    our_extra_env: dict[str, str] = field(default_factory=dict)


FULL = Plan()
QUICK = Plan(
    client_timeout_s=4.0,
    closed_count=200,
    closed_max_s=3.0,
    baseline_rates=[50],
    baseline_open_s=3.0,
    crash_s=3.0,
    crash_at=1.5,
    baseline_drain=Drain(cap_s=4.0, stall_s=2.5),
    low_s=3.0,
    steady_s=5.0,
    our_rates=[25, 50],
    our_open_s=4.0,
    our_bisect_steps=0,
    ours_closed_max_s=20.0,
    our_drain=Drain(cap_s=30.0, stall_s=10.0),
    burst_count=200,
    probe_count=200,
    our_crash_drain=Drain(cap_s=25.0, stall_s=15.0),
    ratelimit_count=10,
    scheduled_count=300,
    # So the crash drain fits a smoke test: a killed send is retried after 5 s, not 30 s.
    our_extra_env={"SEND_ATTEMPT_TIMEOUT_SECONDS": "5"},
)


@dataclass(frozen=True)
class Baseline:
    name: str
    module: str
    fire_and_forget: bool
    delivers: bool = True


BASELINES = [
    Baseline("null", "bench.baselines.null:app", fire_and_forget=False, delivers=False),
    Baseline("sync_handler", "bench.baselines.sync_handler:app", fire_and_forget=False),
    Baseline("blocking_async", "bench.baselines.blocking_async:app", fire_and_forget=False),
    Baseline("background_tasks", "bench.baselines.background_tasks:app", fire_and_forget=True),
    Baseline("thread_per_email", "bench.baselines.thread_per_email:app", fire_and_forget=True),
    Baseline("asyncio_task", "bench.baselines.asyncio_task:app", fire_and_forget=True),
]
OURS = "durable-mail"


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Bench:
    def __init__(
        self, plan: Plan, out_dir: Path, quick: bool, server_args: list[str] | None = None
    ) -> None:
        self.plan = plan
        self.server_args = server_args or []
        self.out_dir = out_dir
        self.log_dir = out_dir / "logs"
        self.quick = quick
        self.runs: list[RunResult] = []
        self.errors: list[str] = []
        self.extra: dict[str, Any] = {}
        self.probes: dict[str, Any] = {}
        self.fake: FakeResend | None = None
        self._tag = 0
        self.loadavg_before = (0.0, 0.0, 0.0)
        self.codec_key = new_codec_key()

    def tag(self, label: str) -> str:
        self._tag += 1
        return f"s{self._tag}-{label}"

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

    # -- loads -----------------------------------------------------------------------------

    async def scenario(
        self,
        system: System,
        scenario: str,
        *,
        rate: float | None = None,
        seconds: float = 0.0,
        count: int = 0,
        concurrency: int = 50,
        max_s: float = 60.0,
        drain: Drain,
        crash_at: float | None = None,
        fake_config: dict[str, Any] | None = None,
        extra_procs: dict[str, Proc] | None = None,
    ) -> RunResult:
        assert self.fake is not None
        tag = self.tag(scenario.split()[0])

        async def drive(on_tick: Callable[[float], None] | None) -> load.LoadResult:
            if rate is not None:
                return await load.open_loop(
                    system.base_url,
                    tag=tag,
                    rate=rate,
                    seconds=seconds,
                    on_tick=on_tick,
                    timeout_s=self.plan.client_timeout_s,
                )
            return await load.closed_loop(
                system.base_url,
                tag=tag,
                count=count,
                concurrency=concurrency,
                max_seconds=max_s,
                timeout_s=self.plan.client_timeout_s,
            )

        run = await run_scenario(
            system,
            scenario,
            drive,
            fake=self.fake,
            drain=drain,
            crash_at=crash_at,
            fake_config=fake_config,
            extra_procs=extra_procs,
        )
        return self.record(run)

    # -- baselines ---------------------------------------------------------------------------

    async def baselines(self) -> None:
        for baseline in BASELINES:
            await self.guarded(f"baseline {baseline.name}", lambda b=baseline: self.baseline(b))

    async def baseline(self, b: Baseline) -> None:
        assert self.fake is not None
        plan = self.plan
        env = {"RESEND_API_URL": self.fake.url, "RESEND_API_KEY": FAKE_API_KEY}

        async def fresh() -> System:
            proc, url = await start_uvicorn(b.name, b.module, self.log_dir, env)
            port = int(url.rsplit(":", 1)[1])

            async def restart() -> Proc:
                new, _ = await start_uvicorn(b.name, b.module, self.log_dir, env, port=port)
                return new

            return System(
                b.name, url, {"api": proc}, delivers=b.delivers, crash_role="api", restart=restart
            )

        # A fresh process per scenario, SIGKILLed after it: what it still holds in memory at
        # the end of the drain window is lost, and a blocked server still working through
        # one scenario's queue cannot leak into the next.
        system = await fresh()
        await self.scenario(
            system,
            f"closed {plan.closed_count}@c{plan.closed_concurrency}",
            count=plan.closed_count,
            concurrency=plan.closed_concurrency,
            max_s=plan.closed_max_s,
            drain=plan.baseline_drain,
        )
        system.procs["api"].kill9()
        for rate in plan.baseline_rates:
            system = await fresh()
            run = await self.scenario(
                system,
                f"open {rate:g}/s",
                rate=rate,
                seconds=plan.baseline_open_s,
                drain=plan.baseline_drain,
            )
            system.procs["api"].kill9()
            if not run.sustainable:
                break
        if not b.fire_and_forget:
            return
        system = await fresh()
        await self.crash(system, plan.crash_rate, plan.crash_s, plan.crash_at, plan.baseline_drain)
        system.procs["api"].kill9()
        system = await fresh()
        await self.flaky(system, plan.crash_rate, plan.crash_s, plan.baseline_drain)
        system.procs["api"].kill9()

    async def crash(
        self, system: System, rate: float, seconds: float, at: float, drain: Drain
    ) -> RunResult:
        return await self.scenario(
            system, f"crash {rate:g}/s", rate=rate, seconds=seconds, crash_at=at, drain=drain
        )

    async def flaky(self, system: System, rate: float, seconds: float, drain: Drain) -> RunResult:
        """The provider answers 500 to a share of sends (a transient error, retry-safe)."""
        share = self.plan.flaky_error_rate
        return await self.scenario(
            system,
            f"flaky {share:.0%} 5xx {rate:g}/s",
            rate=rate,
            seconds=seconds,
            drain=drain,
            fake_config={"error_rate": share, "error_status": 500},
        )

    # -- our stack ---------------------------------------------------------------------------

    async def our_stack(self, only: set[str]) -> None:
        assert self.fake is not None
        db_dir = Path(tempfile.mkdtemp(prefix="bench-temporal-"))
        try:
            start = time.perf_counter()
            server = await DevServer.start(
                self.log_dir, db_dir / "temporal.db", extra_args=self.server_args
            )
            self.extra["dev server ready in"] = f"{time.perf_counter() - start:.2f} s"
            client = await Client.connect(server.address)
            if "ceiling" in only:
                await self.guarded("ceiling", lambda: self.ceiling(client, server))
            if only & {"ours", "ratelimit", "scheduled"}:
                await self.guarded("our stack", lambda: self.ours(client, server, only))
            await server.proc.stop()
        finally:
            shutil.rmtree(db_dir, ignore_errors=True)

    def env(self, server: DevServer, rate_limit: float) -> dict[str, str]:
        assert self.fake is not None
        outbox = self.out_dir / "outbox"
        env = our_env(server, self.fake.url, rate_limit, outbox, self.codec_key)
        return {**env, **self.plan.our_extra_env}

    async def ours(self, client: Client, server: DevServer, only: set[str]) -> None:
        env = self.env(server, rate_limit=1000.0)
        worker = await start_our_worker(client, self.log_dir, env)
        api, url = await start_uvicorn("api", "api.main:app", self.log_dir, env)
        restarts = 0

        async def restart_worker() -> Proc:
            nonlocal restarts
            restarts += 1
            return await start_our_worker(client, self.log_dir, env, name=f"worker{restarts}")

        async def settle() -> None:
            """Start each scenario on an idle stack: every email of the last one recorded as
            sent. (Sent invites stay open for the delivery webhook, 72 h by default, so
            "no running workflow" never comes.)"""
            unsent = "ExecutionStatus='Running' AND EmailStatus='queued'"

            async def idle() -> bool:
                if await backlog(client, OUR_TASK_QUEUE, WORKFLOW) > 0:
                    return False
                return (await client.count_workflows(unsent)).count == 0

            try:
                await wait_until(idle, timeout=60, what="sends recorded", interval=0.25)
            except BenchError as exc:
                self.errors.append(f"settle: {exc}")

        system = System(
            OURS,
            url,
            {"api": api, "worker": worker, "temporal_server": server.proc},
            durable=True,
            crash_role="worker",
            restart=restart_worker,
            settle=settle,
        )
        # Warm-up (first connections, caches); not reported.
        assert self.fake is not None
        await self.fake.reset()
        await load.closed_loop(url, tag="warmup", count=20, concurrency=5, max_seconds=10)
        await self.fake_settled(20, timeout=30)

        if "ours" in only:
            await self.ours_load(system)
        if "ratelimit" in only:
            await self.guarded("rate limit", lambda: self.rate_limited(client, server, system))
        if "scheduled" in only:
            await self.guarded("scheduled", lambda: self.scheduled(client, server, system))
        for proc in system.procs.values():
            if proc is not server.proc:
                await proc.stop()

    async def fake_settled(self, expected: int, timeout: float) -> None:
        assert self.fake is not None
        fake = self.fake

        async def settled() -> bool:
            return await fake.delivered_count() >= expected

        await wait_until(settled, timeout=timeout, what=f"{expected} deliveries", interval=0.2)

    async def ours_load(self, system: System) -> None:
        plan = self.plan
        await self.scenario(
            system,
            f"low {plan.low_rate:g}/s",
            rate=plan.low_rate,
            seconds=plan.low_s,
            drain=plan.our_drain,
        )
        await self.scenario(
            system,
            f"steady {plan.steady_rate:g}/s {plan.steady_s:g}s",
            rate=plan.steady_rate,
            seconds=plan.steady_s,
            drain=plan.our_drain,
        )
        # Step up until a rate is not sustained, then bisect between the last two.
        good, bad = 0.0, None
        for rate in plan.our_rates:
            if await self.our_open(system, rate):
                good = rate
            else:
                bad = rate
                break
        for _ in range(plan.our_bisect_steps if bad is not None and good else 0):
            assert bad is not None
            middle = round((good + bad) / 2)
            if middle in (good, bad):
                break
            if await self.our_open(system, middle):
                good = middle
            else:
                bad = middle
        await self.scenario(
            system,
            f"closed {plan.closed_count}@c{plan.closed_concurrency}",
            count=plan.closed_count,
            concurrency=plan.closed_concurrency,
            max_s=plan.ours_closed_max_s,
            drain=plan.our_drain,
        )
        await self.scenario(
            system,
            f"burst {plan.burst_count}@c{plan.closed_concurrency}",
            count=plan.burst_count,
            concurrency=plan.closed_concurrency,
            max_s=plan.ours_closed_max_s,
            drain=plan.our_drain,
        )
        # The same crash and flaky loads as the fire-and-forget baselines get.
        await self.crash(system, plan.crash_rate, plan.crash_s, plan.crash_at, plan.our_crash_drain)
        await self.flaky(system, plan.crash_rate, plan.crash_s, plan.our_crash_drain)

    async def our_open(self, system: System, rate: float) -> bool:
        plan = self.plan
        run = await self.scenario(
            system, f"open {rate:g}/s", rate=rate, seconds=plan.our_open_s, drain=plan.our_drain
        )
        return bool(run.sustainable)

    async def rate_limited(self, client: Client, server: DevServer, system: System) -> None:
        """Our worker and the fake both at the provider's limit: rate held, and no 429."""
        plan = self.plan
        await system.procs["worker"].stop()
        env = self.env(server, rate_limit=plan.ratelimit)
        system.procs["worker"] = await start_our_worker(client, self.log_dir, env, "worker_rl")
        drain = Drain(cap_s=plan.ratelimit_count / plan.ratelimit + 20.0, stall_s=15.0)
        run = await self.scenario(
            system,
            f"provider limit {plan.ratelimit:g}/s",
            count=plan.ratelimit_count,
            concurrency=10,
            drain=drain,
            fake_config={"rate_limit_per_second": plan.ratelimit},
        )
        assert self.fake is not None
        times = sorted(d.received_wall for d in await self.fake.deliveries())
        sustained = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0
        self.probes["ratelimit"] = {
            "limit_per_s": plan.ratelimit,
            "sustained_per_s": sustained,
            "deliveries": len(times),
            "status_429": run.provider_statuses.get("429", 0),
            "provider_statuses": run.provider_statuses,
        }
        self.extra["provider-limited send rate"] = (
            f"{sustained:.2f}/s sustained against a {plan.ratelimit:g}/s limit "
            f"({len(times)} sends, {run.provider_statuses.get('429', 0)} × 429)"
        )

    async def scheduled(self, client: Client, server: DevServer, system: System) -> None:
        """Worker memory with N invites scheduled a day ahead (`send_at`): each workflow
        waits on a durable timer, cached in the worker (up to its max_cached_workflows)."""
        plan = self.plan
        await system.procs["worker"].stop()
        worker = await start_our_worker(client, self.log_dir, self.env(server, 1000.0), "worker_s")
        system.procs["worker"] = worker
        idle_rss = worker.ps.memory_info().rss / 1e6
        sampler = Sampler({"worker": worker, "api": system.procs["api"]})
        sampler.start()
        tag = self.tag("scheduled")
        send_at = (datetime.now(UTC) + timedelta(days=1)).isoformat().replace("+00:00", "Z")
        # Two steps, so the per-send cost is a slope, not the first workflow's module imports.
        first = max(plan.scheduled_count // 10, 10)
        points: list[tuple[int, float]] = []
        accepted = 0
        accept_seconds = 0.0
        for index, count in ((0, first), (first, plan.scheduled_count - first)):
            # Paced under the API's own per-key limit (200/s by default): a closed loop
            # would be answered 429 for part of it.
            result = await load.open_loop(
                system.base_url,
                tag=tag,
                rate=plan.scheduled_rate,
                seconds=count / plan.scheduled_rate,
                timeout_s=plan.client_timeout_s,
                first_index=index,
                extra={"send_at": send_at},
            )
            accepted += len(result.accepted)
            accept_seconds += result.duration_s
            waited = await self.worker_caught_up(client, worker)
            points.append((accepted, worker.ps.memory_info().rss / 1e6))
            log(
                f"scheduled {accepted}: accepted in {result.duration_s:.0f}s, worker caught up "
                f"{waited:.0f}s later, RSS {points[-1][1]:.0f} MB"
            )
        stats = await sampler.stop()
        (n1, rss1), (n2, rss2) = points
        per_send_kb = (rss2 - rss1) * 1000 / max(n2 - n1, 1)
        self.probes["scheduled"] = {
            "accepted": accepted,
            "accept_per_s": accepted / accept_seconds,
            "worker_rss_idle_mb": idle_rss,
            "worker_rss_points": points,
            "worker_rss_peak_mb": stats["worker"].rss_max_mb,
            "kb_per_waiting_send": per_send_kb,
            "api_cpu": stats["api"].cpu_load,
            "worker_cpu": stats["worker"].cpu_load,
        }
        self.extra[f"worker memory with {accepted} sends scheduled a day ahead"] = (
            f"{rss2:.0f} MB RSS (idle {idle_rss:.0f} MB, {rss1:.0f} MB at {n1}; "
            f"{per_send_kb:.1f} kB per waiting send); accepted at "
            f"{accepted / accept_seconds:.0f}/s"
        )

    async def worker_caught_up(self, client: Client, worker: Proc) -> float:
        """Wait until the worker has run every workflow task: no backlog on its queue and
        the worker idle (< 5% CPU) for 3 s in a row (the backlog count alone lags)."""
        quiet = 0
        worker.ps.cpu_percent(None)

        async def caught_up() -> bool:
            nonlocal quiet
            idle = worker.ps.cpu_percent(None) < 5.0
            empty = await backlog(client, OUR_TASK_QUEUE, WORKFLOW) == 0
            quiet = quiet + 1 if idle and empty else 0
            return quiet >= 3

        return await wait_until(caught_up, timeout=240, what="worker caught up", interval=1.0)

    # -- ceilings of the server itself ------------------------------------------------------

    async def ceiling(self, client: Client, server: DevServer) -> None:
        """Bare `start_workflow` calls from one process, and a one-activity workflow's
        completions per second, on the same dev server (no HTTP, no provider)."""
        worker = await start_minimal_worker(client, server, self.log_dir)
        n = self.plan.probe_count
        running = f"TaskQueue='{MINIMAL_TASK_QUEUE}' AND ExecutionStatus='Running'"

        async def idle() -> bool:
            return (await client.count_workflows(running)).count == 0

        for mode in ("starts", "starts_like_api", "throughput"):
            # Each probe on an idle server: the last one's workflows all completed.
            await wait_until(idle, timeout=120, what="bench workflows completed", interval=0.25)
            result = await self.probe(mode, server, n, {"minimal_worker": worker})
            lat = result.pop("latencies_s")
            result["p50_ms"] = (percentile(lat, 50) or 0.0) * 1000
            result["p99_ms"] = (percentile(lat, 99) or 0.0) * 1000
            self.probes[mode] = result
            log(f"probe {mode}: {result['rate']:.1f}/s p50 {result['p50_ms']:.1f} ms")
        await worker.stop()
        starts, done = self.probes["starts"], self.probes["throughput"]
        like = self.probes["starts_like_api"]
        self.extra["raw start_workflow ceiling"] = (
            f"{starts['rate']:.0f} starts/s ({n} at c50, p50 {starts['p50_ms']:.0f} ms, "
            f"p99 {starts['p99_ms']:.0f} ms; procs {starts['procs']})"
        )
        self.extra["start_workflow with our API's options (memo, 2 search attributes)"] = (
            f"{like['rate']:.0f} starts/s (p50 {like['p50_ms']:.0f} ms, "
            f"p99 {like['p99_ms']:.0f} ms; procs {like['procs']})"
        )
        self.extra["one-activity workflow throughput"] = (
            f"{done['rate']:.1f} workflows/s completed ({n} at c50; procs {done['procs']})"
        )

    async def probe(
        self, mode: str, server: DevServer, count: int, others: dict[str, Proc]
    ) -> dict[str, Any]:
        args = [PYTHON, "-m", "bench.temporal_probe", mode, "--address", server.address]
        args += ["--count", str(count), "--concurrency", str(self.plan.closed_concurrency)]
        proc = spawn(f"probe_{mode}", args, log_dir=self.log_dir, stdout_pipe=True)
        sampler = Sampler({"probe": proc, "temporal_server": server.proc, **others})
        sampler.start()
        line = await read_line(proc, timeout=300)
        stats = await sampler.stop()
        await proc.stop()
        result: dict[str, Any] = json.loads(line)
        result["procs"] = ", ".join(
            f"{name} {s.cpu_load:.0f}%/{s.rss_max_mb:.0f}MB" for name, s in stats.items()
        )
        return result

    # -- targets ------------------------------------------------------------------------------

    def targets(self) -> list[Target]:
        ours = {r.scenario: r for r in self.runs if r.system == OURS}
        out: list[Target] = []
        plan = self.plan
        steady = next((r for s, r in ours.items() if s.startswith("steady")), None)
        if steady and steady.api_p99_ms:
            out.append(
                Target(
                    f"steady {plan.steady_rate:g}/s open loop {plan.steady_s:g}s: API p99",
                    f"{steady.api_p99_ms:.1f} ms",
                    "≤ 25 ms",
                    25.0 / steady.api_p99_ms,
                )
            )
            if steady.due_during_load:
                got = steady.delivered_during_load or 0
                out.append(
                    Target(
                        "… all delivered while the load runs",
                        f"{got}/{steady.due_during_load} received by the provider before the "
                        f"load ended (lost {steady.lost})",
                        "all",
                        got / steady.due_during_load,
                    )
                )
        sustained = [
            r.offered_rate or 0.0
            for s, r in ours.items()
            if s.startswith(("open", "steady", "low")) and r.sustainable
        ]
        throughput = self.probes.get("throughput", {}).get("rate")
        if sustained and throughput:
            best = max(sustained)
            tested = sorted(r.offered_rate or 0 for s, r in ours.items() if s.startswith("open"))
            out.append(
                Target(
                    "highest sustainable open-loop rate vs one-activity workflow throughput",
                    f"{best:g}/s vs {throughput:.1f}/s",
                    "≥ 60%",
                    best / throughput / 0.6,
                    note=f"rates tried {', '.join(f'{t:g}' for t in tested)}",
                )
            )
        burst = next((r for s, r in ours.items() if s.startswith("burst")), None)
        starts = self.probes.get("starts", {}).get("rate")
        like = self.probes.get("starts_like_api", {}).get("rate")
        if burst and starts:
            out.append(
                Target(
                    f"burst {plan.burst_count}@c{plan.closed_concurrency}: HTTP accept rate "
                    "vs raw start_workflow",
                    f"{burst.accepted_per_s:.0f}/s vs {starts:.0f}/s "
                    f"({burst.accepted_per_s / starts:.0%})",
                    "≥ 85%",
                    burst.accepted_per_s / starts / 0.85,
                    note=f"bare starts with our API's options: {like:.0f}/s" if like else "",
                )
            )
        low = next((r for s, r in ours.items() if s.startswith("low")), None)
        if low and low.accept_to_send_p50_ms:
            out.append(
                Target(
                    f"accept-to-send p50 at {plan.low_rate:g}/s",
                    f"{low.accept_to_send_p50_ms:.0f} ms (p99 {low.accept_to_send_p99_ms:.0f})",
                    "≤ 50 ms",
                    50.0 / low.accept_to_send_p50_ms,
                )
            )
        rl = self.probes.get("ratelimit")
        if rl:
            out.append(
                Target(
                    f"sustained send rate under a {rl['limit_per_s']:g}/s provider limit",
                    f"{rl['sustained_per_s']:.2f}/s, {rl['status_429']} × 429",
                    "≥ 95% of the limit, no 429",
                    (rl["sustained_per_s"] / rl["limit_per_s"] / 0.95)
                    if rl["status_429"] == 0
                    else 0.0,
                )
            )
        crash = next((r for s, r in ours.items() if s.startswith("crash")), None)
        if crash and crash.lost is not None:
            bad = (crash.lost or 0) + (crash.duplicates or 0)
            out.append(
                Target(
                    "worker SIGKILLed mid-run: lost + duplicates",
                    f"{crash.lost} lost, {crash.duplicates} duplicates of {crash.accepted}",
                    "0",
                    1.0 if bad == 0 else 0.0,
                )
            )
        return out

    # -- main ---------------------------------------------------------------------------------

    async def main(self, only: set[str]) -> int:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        self.loadavg_before = os.getloadavg()
        self.fake = await FakeResend.start(self.log_dir, latency=self.plan.latency)
        try:
            if "baselines" in only:
                await self.baselines()
            if only - {"baselines"}:
                await self.guarded("temporal", lambda: self.our_stack(only))
        finally:
            await self.fake.close()
            await stop_all()
        elapsed = time.perf_counter() - started
        self.write(elapsed, only)
        return 1 if self.errors else 0

    def write(self, elapsed: float, only: set[str]) -> None:
        targets = self.targets()
        cpu = psutil.cpu_count() or 0
        extra_args = f"dev server extra args `{' '.join(self.server_args)}`; " * bool(
            self.server_args
        )
        header = (
            f"# durable-mail benchmark ({'quick' if self.quick else 'full'}, "
            f"{datetime.now().isoformat(timespec='seconds')})\n\n"
            f"{platform.platform()}, {cpu} CPUs, Python {platform.python_version()}; "
            f"provider latency {self.plan.latency:g} s; groups: {', '.join(sorted(only))}; "
            f"{extra_args}took {elapsed:.0f} s. Load average before {self.loadavg_before[0]:.1f}, "
            f"after {os.getloadavg()[0]:.1f} (other work on the machine skews every figure: "
            "see *others* in the CPU column).\n"
        )
        md = markdown(self.runs, targets, self.extra, self.errors, header)
        (self.out_dir / "results.md").write_text(md)
        payload = {
            "plan": asdict(self.plan),
            "runs": [r.as_json() for r in self.runs],
            "targets": [asdict(t) | {"met": t.met} for t in targets],
            "probes": self.probes,
            "extra": self.extra,
            "errors": self.errors,
            "elapsed_s": elapsed,
        }
        (self.out_dir / "results.json").write_text(json.dumps(payload, indent=2, default=str))
        if self.runs:
            try:
                chart(self.runs, self.out_dir / "chart.png", header.splitlines()[0].lstrip("# "))
            except Exception as exc:
                self.errors.append(f"chart: {exc}")
        print(md, flush=True)
        log(f"results in {self.out_dir}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, a smoke test")
    parser.add_argument(
        "--only",
        default=",".join(GROUPS),
        help=f"comma-separated groups among {', '.join(GROUPS)} (default: all)",
    )
    parser.add_argument("--latency", type=float, default=None, help="provider latency, s")
    parser.add_argument("--out", type=Path, default=None, help="results directory")
    parser.add_argument(
        "--server-arg",
        action="append",
        default=[],
        help="extra `temporal server start-dev` argument (repeatable), e.g. "
        "--server-arg=--dynamic-config-value --server-arg=matching.numTaskqueueReadPartitions=1",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    only = {g.strip() for g in args.only.split(",") if g.strip()}
    unknown = only - set(GROUPS)
    if unknown:
        raise SystemExit(f"unknown group(s): {', '.join(sorted(unknown))}")
    plan = QUICK if args.quick else FULL
    if args.latency is not None:
        plan = replace(plan, latency=args.latency)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out_dir = args.out or ROOT / "bench" / "results" / (stamp + ("-quick" if args.quick else ""))
    code = 1
    try:
        code = asyncio.run(Bench(plan, out_dir, args.quick, args.server_arg).main(only))
    finally:
        for proc in STARTED:
            if proc.alive():
                proc.kill9()
        sys.stdout.flush()
        sys.stderr.flush()
        # The Temporal client's runtime can crash the interpreter at exit (sdk-python#300).
        os._exit(code)


if __name__ == "__main__":
    main()
