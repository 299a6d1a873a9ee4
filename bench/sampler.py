"""CPU and memory of the processes under test, sampled while a scenario runs."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Final

import psutil

from testkit.procs import Proc


@dataclass
class ProcStats:
    """CPU (% of one core) and RSS (MB) of one process tree over a scenario.

    `cpu_load` is the mean while the load ran (up to `Sampler.mark()`), `cpu_mean` over the
    whole scenario including the drain, `cpu_max` the busiest sampling interval.
    """

    cpu_load: float = 0.0
    cpu_mean: float = 0.0
    cpu_max: float = 0.0
    rss_max_mb: float = 0.0
    rss_last_mb: float = 0.0
    cpu_seconds: float = 0.0
    samples: int = 0


class Sampler:
    """Samples CPU and RSS of named process trees every `interval` seconds while running.

    The name mapped to `Sampler.OTHERS` gets the CPU of everything else on the machine
    (all CPUs' busy time minus the processes sampled here): other load skews a benchmark.
    """

    OTHERS: Final = "others"

    def __init__(
        self, procs: dict[str, Proc | psutil.Process | str], interval: float = 0.5
    ) -> None:
        self.interval = interval
        self._procs = dict(procs)
        self._cpu_seen: dict[int, float] = {}
        self._cpu_total: dict[str, float] = dict.fromkeys(self._procs, 0.0)
        self._cpu_peak: dict[str, float] = dict.fromkeys(self._procs, 0.0)
        self._rss: dict[str, list[float]] = {name: [] for name in self._procs}
        self._task: asyncio.Task[None] | None = None
        self._started = self._last = 0.0
        self._mark: tuple[float, dict[str, float]] | None = None
        self._busy: float | None = None

    @staticmethod
    def self_process() -> psutil.Process:
        """The benchmark's own process (the load generator), sampled like the others."""
        return psutil.Process()

    def track(self, name: str, target: Proc | psutil.Process | str) -> None:
        """Sample `target` under `name` from now on (a restarted process keeps its role)."""
        self._procs[name] = target
        self._cpu_total.setdefault(name, 0.0)
        self._cpu_peak.setdefault(name, 0.0)
        self._rss.setdefault(name, [])

    def _members(self, target: Proc | psutil.Process | str) -> list[psutil.Process]:
        # A bare psutil.Process (the benchmark itself) is sampled alone: its children are
        # the systems under test, sampled under their own names.
        if isinstance(target, str):
            return []
        return target.tree() if isinstance(target, Proc) else [target]

    def _machine_busy(self) -> float:
        times = psutil.cpu_times()
        return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))

    def _sample(self) -> None:
        now = time.perf_counter()
        elapsed = now - self._last
        self._last = now
        busy = self._machine_busy()
        ours = 0.0
        for name, target in self._procs.items():
            if target == self.OTHERS:
                continue
            cpu_delta = 0.0
            rss = 0
            for member in self._members(target):
                try:
                    with member.oneshot():
                        times = member.cpu_times()
                        total = times.user + times.system
                        rss += member.memory_info().rss
                except psutil.Error:
                    continue
                previous = self._cpu_seen.get(member.pid)
                self._cpu_seen[member.pid] = total
                if previous is not None:
                    cpu_delta += max(total - previous, 0.0)
            ours += cpu_delta
            if not self._started:
                continue
            self._cpu_total[name] += cpu_delta
            if elapsed >= self.interval / 2:
                self._cpu_peak[name] = max(self._cpu_peak[name], 100.0 * cpu_delta / elapsed)
            if rss:
                self._rss[name].append(rss / 1e6)
        previous_busy, self._busy = self._busy, busy
        others = [n for n, t in self._procs.items() if t == self.OTHERS]
        if self._started and others and previous_busy is not None:
            delta = max(busy - previous_busy - ours, 0.0)
            self._cpu_total[others[0]] += delta
            if elapsed >= self.interval / 2:
                self._cpu_peak[others[0]] = max(self._cpu_peak[others[0]], 100 * delta / elapsed)
            self._rss[others[0]].append(0.0)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self._sample()

    def start(self) -> None:
        self._last = time.perf_counter()
        self._sample()
        self._started = self._last
        self._task = asyncio.create_task(self._run())

    def mark(self) -> None:
        """End of the load phase: `cpu_load` covers start..now."""
        self._sample()
        self._mark = (time.perf_counter(), dict(self._cpu_total))

    async def stop(self) -> dict[str, ProcStats]:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._sample()
        whole = max(time.perf_counter() - self._started, 1e-9)
        mark_time, mark_cpu = self._mark or (time.perf_counter(), self._cpu_total)
        load = max(mark_time - self._started, 1e-9)
        stats: dict[str, ProcStats] = {}
        for name in self._procs:
            rss = self._rss[name]
            if not rss:
                continue
            if self._procs[name] == self.OTHERS:
                rss = [0.0]
            stats[name] = ProcStats(
                cpu_load=100.0 * mark_cpu.get(name, 0.0) / load,
                cpu_mean=100.0 * self._cpu_total[name] / whole,
                cpu_max=self._cpu_peak[name],
                rss_max_mb=max(rss),
                rss_last_mb=rss[-1],
                cpu_seconds=self._cpu_total[name],
                samples=len(rss),
            )
        return stats
