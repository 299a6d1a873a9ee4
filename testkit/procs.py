"""Processes that a test, the bench or a script starts, and the ports they listen on.

Each process has its own log file, is waited on by condition with a deadline (a log line,
an open port, a health check), and is stopped or killed by its own PID (its descendants
too, each by PID): never by name, so other people's processes on this machine are safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from testkit.polling import eventually

ROOT = Path(__file__).resolve().parent.parent

log = logging.getLogger("testkit.procs")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:`port`."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def stop_popen(proc: subprocess.Popen[bytes], grace: float = 15.0) -> None:
    """SIGTERM one process started here (by its PID), then wait; SIGKILL if it hangs."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@dataclass
class Proc:
    """One subprocess run from the repository root; restartable with the same arguments.

    `env` is added to this process's environment. Its output goes to `log_path` (appended
    to on every start), except stdout when `stdout_pipe` is set (read it with `read_line`).
    """

    name: str
    args: list[str]
    env: Mapping[str, str]
    log_path: Path
    stdout_pipe: bool = False
    # Where it runs: this checkout, or another one (a release's git worktree).
    cwd: Path = ROOT
    popen: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _log_offset: int = field(default=0, init=False, repr=False)
    _ps: psutil.Process | None = field(default=None, init=False, repr=False)

    def start(self) -> None:
        assert not self.alive, f"{self.name} is already running"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log_file:
            self._log_offset = log_file.tell()
            self.popen = subprocess.Popen(
                self.args,
                cwd=self.cwd,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE if self.stdout_pipe else log_file,
                stderr=log_file if self.stdout_pipe else subprocess.STDOUT,
            )
        self._ps = psutil.Process(self.popen.pid)
        log.info("started %s (pid %d)", self.name, self.pid)

    @property
    def pid(self) -> int:
        assert self.popen is not None, f"{self.name} was never started"
        return self.popen.pid

    @property
    def ps(self) -> psutil.Process:
        """The running process, for its CPU and memory."""
        assert self._ps is not None, f"{self.name} was never started"
        return self._ps

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def tree(self) -> list[psutil.Process]:
        """This process and its descendants, while it runs."""
        if not self.alive:
            return []
        try:
            return [self.ps, *self.ps.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def log_since_start(self) -> str:
        with self.log_path.open("rb") as log_file:
            log_file.seek(self._log_offset)
            return log_file.read().decode(errors="replace")

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_since_start().splitlines()[-lines:])

    def kill9(self) -> None:
        """SIGKILL this process and its descendants, each by PID, and reap it."""
        for member in reversed(self.tree()):
            with contextlib.suppress(psutil.NoSuchProcess, ProcessLookupError):
                os.kill(member.pid, signal.SIGKILL)
        if self.popen is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=10)

    async def kill(self) -> None:
        """SIGKILL a running process (a crash, on purpose) and wait until it is gone."""
        assert self.popen is not None and self.alive, f"{self.name} is not running"
        await asyncio.to_thread(self.kill9)
        code = self.popen.returncode
        assert code == -signal.SIGKILL, f"{self.name} exited with {code}, not by SIGKILL"
        log.info("killed -9 %s (pid %d)", self.name, self.pid)

    async def stop(self, grace: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after `grace` seconds; a no-op if it is not running."""
        if self.popen is None or not self.alive:
            return
        children = self.tree()[1:]
        with contextlib.suppress(ProcessLookupError):
            self.popen.terminate()
        try:
            await asyncio.to_thread(self.popen.wait, grace)
        except subprocess.TimeoutExpired:
            await asyncio.to_thread(self.kill9)
        for child in children:
            with contextlib.suppress(psutil.NoSuchProcess, ProcessLookupError):
                if child.is_running():
                    os.kill(child.pid, signal.SIGKILL)

    async def wait_ready(
        self,
        check: Callable[[], bool] | Callable[[], Awaitable[bool]],
        *,
        timeout: float,
        what: str,
        interval: float = 0.05,
    ) -> None:
        """Wait until `check` holds, failing at once with its log if the process exits."""

        async def ready() -> bool:
            if not self.alive:
                raise AssertionError(f"{self.name} exited before {what}:\n{self.log_tail()}")
            result = check()
            return await result if not isinstance(result, bool) else result

        await eventually(ready, timeout=timeout, what=f"{self.name}: {what}", interval=interval)

    async def wait_port(self, port: int, *, timeout: float = 30.0) -> None:
        await self.wait_ready(lambda: port_open(port), timeout=timeout, what=f"port {port}")

    async def read_line(self, *, timeout: float) -> str:
        """The next line on the piped stdout, within `timeout` seconds."""
        assert self.popen is not None and self.popen.stdout is not None, "stdout is not piped"
        stdout = self.popen.stdout
        try:
            raw = await asyncio.wait_for(asyncio.to_thread(stdout.readline), timeout)
        except TimeoutError:
            raise AssertionError(f"{self.name} printed nothing in {timeout:.0f}s") from None
        if not raw:
            raise AssertionError(f"{self.name} exited before printing:\n{self.log_tail()}")
        return raw.decode().strip()
