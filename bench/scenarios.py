"""What the benchmark runs, as data: the sizes of a full and a quick run (`Plan`), the systems,
and each system's program of scenarios. `bench/runners.py` carries them out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bench.measure import Drain

GROUPS = (
    "baselines", "ours", "ceiling", "ratelimit", "scheduled", "batch", "fairness", "coalesce",
)  # fmt: skip


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
    # Bulk sends at the provider's limit (issue 12): invites, invites per batch request.
    bulk_limit: float = 2.0
    bulk_runs: list[tuple[int, int]] = field(default_factory=lambda: [(1000, 100), (10_000, 100)])
    bulk_concurrency: int = 10
    # Single invites at the same limit, for server work per email (history events, tasks).
    history_singles: int = 20
    # Fairness: tenant A's single invites queued (arriving at `fairness_fill_rate`, which
    # this 2-core machine sustains: faster, the API times out), then tenant B's probes, one
    # every `fairness_probe_every_s`, each waited for up to `fairness_wait_s` after the last.
    fairness_backlog: int = 2000
    fairness_fill_rate: float = 40.0
    fairness_probes: int = 20
    fairness_probe_every_s: float = 1.5
    fairness_wait_s: float = 20.0


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
    bulk_runs=[(300, 100), (1000, 100)],
    history_singles=6,
    fairness_backlog=300,
    fairness_probes=5,
    fairness_wait_s=10.0,
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


@dataclass(frozen=True)
class OpenLoop:
    """Invites arriving every 1/`rate` seconds for `seconds`, whatever the server does."""

    rate: float
    seconds: float


@dataclass(frozen=True)
class ClosedLoop:
    """`count` invites from `concurrency` clients; no new one after `max_s` seconds."""

    count: int
    concurrency: int
    max_s: float


@dataclass(frozen=True)
class Scenario:
    """One load against one system, how long to wait for its deliveries, and what breaks:
    the system's crash role SIGKILLed at `crash_at` seconds, or the provider reconfigured."""

    name: str
    load: OpenLoop | ClosedLoop
    drain: Drain
    crash_at: float | None = None
    fake_config: dict[str, Any] | None = None


@dataclass(frozen=True)
class RateSearch:
    """Open loops at rising `rates` until one is not sustained, then `bisect_steps` halvings
    between the last rate sustained and the first one not."""

    rates: list[float]
    seconds: float
    drain: Drain
    bisect_steps: int = 0

    def at(self, rate: float) -> Scenario:
        return Scenario(f"open {rate:g}/s", OpenLoop(rate, self.seconds), self.drain)


Step = Scenario | RateSearch


def closed(plan: Plan, label: str, count: int, max_s: float, drain: Drain) -> Scenario:
    load = ClosedLoop(count, plan.closed_concurrency, max_s)
    return Scenario(f"{label} {count}@c{plan.closed_concurrency}", load, drain)


def crash(plan: Plan, drain: Drain) -> Scenario:
    load = OpenLoop(plan.crash_rate, plan.crash_s)
    return Scenario(f"crash {plan.crash_rate:g}/s", load, drain, crash_at=plan.crash_at)


def flaky(plan: Plan, drain: Drain) -> Scenario:
    """The provider answers 500 to a share of sends (a transient error, retry-safe)."""
    share = plan.flaky_error_rate
    return Scenario(
        f"flaky {share:.0%} 5xx {plan.crash_rate:g}/s",
        OpenLoop(plan.crash_rate, plan.crash_s),
        drain,
        fake_config={"error_rate": share, "error_status": 500},
    )


def baseline_program(plan: Plan, baseline: Baseline) -> list[Step]:
    """Each on a fresh process of the baseline, SIGKILLed after its drain window."""
    drain = plan.baseline_drain
    steps: list[Step] = [
        closed(plan, "closed", plan.closed_count, plan.closed_max_s, drain),
        RateSearch(plan.baseline_rates, plan.baseline_open_s, drain),
    ]
    if baseline.fire_and_forget:
        steps += [crash(plan, drain), flaky(plan, drain)]
    return steps


def our_program(plan: Plan) -> list[Step]:
    """All on one stack; the crash kills our worker, and the same loads as the baselines'."""
    drain = plan.our_drain
    return [
        Scenario(f"low {plan.low_rate:g}/s", OpenLoop(plan.low_rate, plan.low_s), drain),
        Scenario(
            f"steady {plan.steady_rate:g}/s {plan.steady_s:g}s",
            OpenLoop(plan.steady_rate, plan.steady_s),
            drain,
        ),
        RateSearch(plan.our_rates, plan.our_open_s, drain, plan.our_bisect_steps),
        closed(plan, "closed", plan.closed_count, plan.ours_closed_max_s, drain),
        closed(plan, "burst", plan.burst_count, plan.ours_closed_max_s, drain),
        crash(plan, plan.our_crash_drain),
        flaky(plan, plan.our_crash_drain),
    ]


def rate_limited(plan: Plan) -> Scenario:
    """Our worker and the fake both at the provider's limit: rate held, and no 429."""
    drain = Drain(cap_s=plan.ratelimit_count / plan.ratelimit + 20.0, stall_s=15.0)
    return Scenario(
        f"provider limit {plan.ratelimit:g}/s",
        ClosedLoop(plan.ratelimit_count, 10, 60.0),
        drain,
        fake_config={"rate_limit_per_second": plan.ratelimit},
    )


@dataclass(frozen=True)
class BulkRun:
    """`invites` invitations as batch requests of `per_request`, from `concurrency` clients,
    with the provider (fake and worker) at `limit` requests per second."""

    invites: int
    per_request: int
    concurrency: int
    limit: float

    @property
    def name(self) -> str:
        return f"{self.invites:,} invites as {self.invites // self.per_request} batches"


def bulk_program(plan: Plan) -> list[BulkRun]:
    return [
        BulkRun(invites, per_request, plan.bulk_concurrency, plan.bulk_limit)
        for invites, per_request in plan.bulk_runs
    ]


@dataclass(frozen=True)
class FairnessProbe:
    """Tenant A's `backlog` single invites queued, then tenant B's `probes` single invites:
    how long each of B's waits for the provider, with the server's priority and fairness on
    (`fair`) or off (FIFO: the dev server without its matching dynamic config)."""

    backlog: int
    fill_rate: float
    probes: int
    every_s: float
    wait_s: float
    limit: float
    fair: bool

    @property
    def name(self) -> str:
        mode = "priority+fairness" if self.fair else "FIFO (no fairness)"
        return f"B's invite behind A's {self.backlog:,}, {mode}"


def fairness_program(plan: Plan) -> list[FairnessProbe]:
    return [
        FairnessProbe(
            plan.fairness_backlog,
            plan.fairness_fill_rate,
            plan.fairness_probes,
            plan.fairness_probe_every_s,
            plan.fairness_wait_s,
            plan.bulk_limit,
            fair,
        )
        for fair in (True, False)
    ]
