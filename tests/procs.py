"""Processes a test owns: the worker, the API and a Temporal dev server as subprocesses.

Each is started with its own environment and log file, waited on with a deadline (a log
line, an open port, a health check) and stopped or killed by its own PID only.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.conftest import SEARCH_ATTRIBUTES, temporal_binary

ROOT = Path(__file__).resolve().parent.parent
WORKER_READY = "worker ready"

log = logging.getLogger("tests.procs")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


async def wait_for(
    check: Callable[[], bool] | Callable[[], Awaitable[bool]],
    *,
    timeout: float,
    what: str,
    interval: float = 0.05,
) -> float:
    """Poll `check` until it holds; return the seconds it took, or fail at the deadline."""
    started = time.monotonic()
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return time.monotonic() - started
        if time.monotonic() - started >= timeout:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)


@dataclass
class Proc:
    """One subprocess with a log file; restartable with the same arguments."""

    name: str
    args: list[str]
    env: dict[str, str]
    log_path: Path
    popen: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _log_offset: int = field(default=0, repr=False)

    def start(self) -> None:
        assert not self.alive, f"{self.name} is already running"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log_file:
            self._log_offset = log_file.tell()
            self.popen = subprocess.Popen(
                self.args,
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        log.info("started %s (pid %d)", self.name, self.pid)

    @property
    def pid(self) -> int:
        assert self.popen is not None, f"{self.name} was never started"
        return self.popen.pid

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def log_since_start(self) -> str:
        with self.log_path.open("rb") as log_file:
            log_file.seek(self._log_offset)
            return log_file.read().decode(errors="replace")

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_since_start().splitlines()[-lines:])

    async def kill(self) -> None:
        """SIGKILL this process (by its PID) and wait until it is gone."""
        assert self.popen is not None and self.alive, f"{self.name} is not running"
        self.popen.kill()
        code = await asyncio.to_thread(self.popen.wait, 10)
        assert code == -signal.SIGKILL, f"{self.name} exited with {code}, not by SIGKILL"
        log.info("killed -9 %s (pid %d)", self.name, self.pid)

    async def stop(self, grace: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after `grace` seconds; a no-op if it is not running."""
        if self.popen is None or not self.alive:
            return
        self.popen.terminate()
        try:
            await asyncio.to_thread(self.popen.wait, grace)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            await asyncio.to_thread(self.popen.wait, 10)

    async def wait_ready(self, check: Callable[[], bool], *, timeout: float, what: str) -> None:
        def ready() -> bool:
            if not self.alive:
                raise AssertionError(f"{self.name} exited before {what}:\n{self.log_tail()}")
            return check()

        await wait_for(ready, timeout=timeout, what=f"{self.name}: {what}")


def worker_proc(env: dict[str, str], log_dir: Path, name: str = "worker") -> Proc:
    """`python worker.py` with `env` (see `tests.conftest.worker_env`)."""
    return Proc(name, [sys.executable, "worker.py"], env, log_dir / f"{name}.log")


async def start_worker(proc: Proc, timeout: float = 30.0) -> None:
    """Start (or restart) a worker and wait until it polls both task queues."""
    proc.start()
    await proc.wait_ready(
        lambda: WORKER_READY in proc.log_since_start(), timeout=timeout, what="worker ready"
    )


def api_proc(env: dict[str, str], log_dir: Path, port: int, name: str = "api") -> Proc:
    """`uvicorn api.main:app` on 127.0.0.1:`port`."""
    args = [
        sys.executable, "-m", "uvicorn", "api.main:app",
        "--host", "127.0.0.1", "--port", str(port), "--no-access-log",
    ]  # fmt: skip
    return Proc(name, args, env, log_dir / f"{name}.log")


async def start_api(proc: Proc, url: str, timeout: float = 30.0) -> None:
    proc.start()

    def healthy() -> bool:
        try:
            return httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    await proc.wait_ready(healthy, timeout=timeout, what="/healthz")


def temporal_proc(db_file: Path, port: int, log_dir: Path) -> Proc:
    """Our own `temporal server start-dev` on a SQLite file, WAL pragmas, no Web UI."""
    args = [
        temporal_binary(), "server", "start-dev",
        "--ip", "127.0.0.1", "--port", str(port), "--headless",
        "--db-filename", str(db_file),
        "--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal",
        "--log-level", "error",
    ]  # fmt: skip
    for name in SEARCH_ATTRIBUTES:
        args += ["--search-attribute", f"{name}=Keyword"]
    return Proc("temporal", args, dict(os.environ), log_dir / "temporal.log")


async def start_temporal(proc: Proc, port: int, timeout: float = 30.0) -> None:
    proc.start()
    await proc.wait_ready(lambda: port_open(port), timeout=timeout, what=f"port {port}")
