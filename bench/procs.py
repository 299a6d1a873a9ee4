"""Start, watch and stop the processes a benchmark run owns, always by PID.

Every wait here is on a condition with a deadline (a line on stdout, an open port, a
predicate), never a bare sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import psutil

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
POLL_S = 0.05
# Every process this run started, so an interrupted run still stops them (by PID).
STARTED: list[Proc] = []


class BenchError(RuntimeError):
    """A process or a condition the run depends on did not behave."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


async def wait_until(
    predicate: Callable[[], Awaitable[bool]] | Callable[[], bool],
    *,
    timeout: float,
    what: str,
    interval: float = POLL_S,
) -> float:
    """Poll `predicate` until it holds; return the seconds it took or raise after `timeout`."""
    start = time.perf_counter()
    deadline = start + timeout
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return time.perf_counter() - start
        if time.perf_counter() > deadline:
            raise BenchError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(interval)


@dataclass
class Proc:
    """One child process: its role name, PID and log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    ps: psutil.Process = field(init=False)

    def __post_init__(self) -> None:
        self.ps = psutil.Process(self.popen.pid)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tree(self) -> list[psutil.Process]:
        """This process and its descendants (uvicorn and the dev server may fork)."""
        try:
            return [self.ps, *self.ps.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def kill9(self) -> None:
        """SIGKILL this process and its descendants, each by PID (the crash scenarios)."""
        for proc in reversed(self.tree()):
            with contextlib.suppress(psutil.NoSuchProcess, ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=2)

    async def stop(self, grace: float = 8.0) -> None:
        """SIGTERM, wait up to `grace` seconds, then SIGKILL what is left (by PID)."""
        if not self.alive():
            return
        children = self.tree()[1:]
        with contextlib.suppress(ProcessLookupError):
            self.popen.send_signal(signal.SIGTERM)
        with contextlib.suppress(BenchError):
            await wait_until(lambda: not self.alive(), timeout=grace, what=f"{self.name} exit")
        if self.alive():
            self.kill9()
        for child in children:
            with contextlib.suppress(psutil.NoSuchProcess, ProcessLookupError):
                if child.is_running():
                    os.kill(child.pid, signal.SIGKILL)


def spawn(
    name: str,
    args: list[str],
    *,
    log_dir: Path,
    env: dict[str, str] | None = None,
    stdout_pipe: bool = False,
) -> Proc:
    """Start `args` in its own session, stderr (and stdout unless piped) to `log_dir/name.log`."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    log = log_path.open("ab")
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    popen = subprocess.Popen(
        args,
        cwd=ROOT,
        env=full_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE if stdout_pipe else log,
        stderr=log,
        start_new_session=True,
    )
    log.close()
    proc = Proc(name=name, popen=popen, log_path=log_path)
    STARTED.append(proc)
    return proc


async def stop_all() -> None:
    """Stop every process this run started that is still alive, newest first."""
    for proc in reversed(STARTED):
        await proc.stop(grace=5.0)


async def read_line(proc: Proc, *, timeout: float) -> str:
    """The first line `proc` prints on its piped stdout, within `timeout` seconds."""
    assert proc.popen.stdout is not None
    stdout = proc.popen.stdout
    loop = asyncio.get_running_loop()
    try:
        raw = await asyncio.wait_for(loop.run_in_executor(None, stdout.readline), timeout)
    except TimeoutError:
        raise BenchError(f"{proc.name} printed nothing in {timeout:.0f}s") from None
    if not raw:
        raise BenchError(f"{proc.name} exited before printing: {proc.log_tail()}")
    return raw.decode().strip()


async def wait_port(proc: Proc, port: int, *, timeout: float = 20.0) -> None:
    """Wait until `proc` listens on `port`, failing fast if it exits."""

    def ready() -> bool:
        if not proc.alive():
            raise BenchError(f"{proc.name} exited with {proc.popen.returncode}: {proc.log_tail()}")
        return port_open(port)

    await wait_until(ready, timeout=timeout, what=f"{proc.name} on port {port}")


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

    def _members(self, target: Proc | psutil.Process) -> list[psutil.Process]:
        # A bare psutil.Process (the benchmark itself) is sampled alone: its children are
        # the systems under test, sampled under their own names.
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
