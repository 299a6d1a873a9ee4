"""Chaos harness: our own Temporal dev server, workers and APIs as real processes.

Unlike the session harness, each scenario owns its dev server (on a SQLite file under
`tmp_path`) because it may kill it. Workers run `python worker.py`, APIs run uvicorn; the
fake Resend runs in-process so the test reads its deliveries directly.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client

from testkit.dev_server import DevServer
from testkit.fake_resend import FakeResendServer
from testkit.keys import API_KEY, CODEC_KEYS, FAKE_KEY
from testkit.procs import Proc, free_port
from testkit.stack import api_proc, start_api, start_worker, worker_proc

log = logging.getLogger("tests.chaos")


@dataclass
class Stack:
    """One scenario's processes; everything a scenario kills, it can restart."""

    temporal: DevServer
    workers: list[Proc]
    apis: list[Proc]
    api_urls: list[str]
    fake_server: FakeResendServer
    env: dict[str, str]

    async def restart_temporal(self) -> None:
        await self.temporal.start()

    async def client(self) -> Client:
        return await self.temporal.client()

    async def stop(self) -> None:
        for proc in [*self.apis, *self.workers, self.temporal.proc]:
            await proc.stop()


def chaos_env(
    temporal_address: str, fake_url: str, outbox: Path, *, resend_timeout: float
) -> dict[str, str]:
    """Environment of the workers and APIs: fast retries, short attempts, a high limit."""
    return {
        "TEMPORAL_ADDRESS": temporal_address,
        "TASK_QUEUE": "chaos",
        "SEND_TASK_QUEUE": "chaos-send",
        "RESEND_API_KEY": FAKE_KEY,
        "RESEND_API_URL": fake_url,
        "RESEND_RATE_LIMIT_PER_SECOND": "200",
        "RESEND_TIMEOUT_SECONDS": str(resend_timeout),
        "SEND_ATTEMPT_TIMEOUT_SECONDS": "3",
        "SEND_INITIAL_BACKOFF_SECONDS": "0.2",
        "SEND_MAX_BACKOFF_SECONDS": "2",
        "OUTBOX_DIR": str(outbox),
        "APP_BASE_URL": "https://app.chaos.example",
        "API_KEYS": API_KEY,
        # Chaos runs encrypted, as production does.
        "PAYLOAD_CODEC_KEYS": CODEC_KEYS,
        "LOG_LEVEL": "INFO",
        # Several workers on one machine: no fixed Prometheus port to collide on.
        "WORKER_METRICS_PORT": "0",
    }


class StackFactory:
    """Starts stacks for a test and stops every process it started at teardown."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.stacks: list[Stack] = []
        self.fakes: list[FakeResendServer] = []

    async def __call__(
        self, *, workers: int = 1, apis: int = 1, resend_timeout: float = 2.0
    ) -> Stack:
        logs = self.tmp_path / "logs"
        fake_server = FakeResendServer()
        await fake_server.__aenter__()
        self.fakes.append(fake_server)
        temporal = DevServer.create(self.tmp_path / "temporal.db", logs)
        env = chaos_env(
            temporal.address,
            fake_server.url,
            self.tmp_path / "outbox",
            resend_timeout=resend_timeout,
        )
        api_ports = [free_port() for _ in range(apis)]
        stack = Stack(
            temporal=temporal,
            workers=[worker_proc(env, logs, f"worker-{i + 1}") for i in range(workers)],
            apis=[api_proc(env, logs, p, f"api-{i + 1}") for i, p in enumerate(api_ports)],
            api_urls=[f"http://127.0.0.1:{p}" for p in api_ports],
            fake_server=fake_server,
            env=env,
        )
        self.stacks.append(stack)
        await temporal.start()
        for worker in stack.workers:
            await start_worker(worker)
        for api, url in zip(stack.apis, stack.api_urls, strict=True):
            await start_api(api, url)
        log.info(
            "stack up: temporal %s, APIs %s, fake %s",
            temporal.address,
            stack.api_urls,
            fake_server.url,
        )
        return stack

    async def close(self) -> None:
        for stack in self.stacks:
            await stack.stop()
        for fake_server in self.fakes:
            await fake_server.__aexit__(None, None, None)


@pytest.fixture
async def stack_factory(tmp_path: Path) -> AsyncIterator[StackFactory]:
    factory = StackFactory(tmp_path)
    try:
        yield factory
    finally:
        await factory.close()


# -- figures ---------------------------------------------------------------------------------


@dataclass
class Figures:
    """One scenario's outcome, as the lead quotes it."""

    scenario: str
    invites: int
    accepted: int
    delivered: int
    lost: int
    duplicates: int
    unaccepted_delivered: int
    api_503: int
    api_no_answer: int
    api_other_errors: int
    replayed_202: int
    provider_answers: dict[str, int]
    elapsed_s: float
    notes: dict[str, Any] = field(default_factory=dict)


COLUMNS = (
    ("scenario", "scenario"),
    ("invites", "invites"),
    ("accepted", "accepted"),
    ("delivered", "delivered"),
    ("lost", "lost"),
    ("duplicates", "dup"),
    ("unaccepted_delivered", "unaccepted delivered"),
    ("api_503", "503s"),
    ("api_no_answer", "no answer"),
    ("replayed_202", "replayed 202"),
    ("provider_answers", "provider answers"),
    ("elapsed_s", "elapsed s"),
)


@dataclass
class ChaosReport:
    """Collects every scenario's figures; rewrites the JSON and markdown files on each add."""

    directory: Path
    rows: list[Figures] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def add(self, figures: Figures) -> None:
        self.rows.append(figures)
        self.save()
        log.info("chaos figures: %s", json.dumps(asdict(figures)))

    def save(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "chaos-summary.json").write_text(
            json.dumps([asdict(r) for r in self.rows], indent=2)
        )
        (self.directory / "chaos-summary.md").write_text(self.markdown() + "\n")

    def markdown(self) -> str:
        def cell(row: Figures, name: str) -> str:
            value = getattr(row, name)
            if isinstance(value, dict):
                return " ".join(f"{k}:{v}" for k, v in sorted(value.items()))
            return f"{value:.1f}" if isinstance(value, float) else str(value)

        lines = [
            "| " + " | ".join(title for _, title in COLUMNS) + " |",
            "|" + "---|" * len(COLUMNS),
        ]
        lines += ["| " + " | ".join(cell(r, n) for n, _ in COLUMNS) + " |" for r in self.rows]
        return "\n".join(lines)


REPORT = pytest.StashKey[ChaosReport]()


@pytest.fixture(scope="session")
def chaos_report(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ChaosReport]:
    report = ChaosReport(tmp_path_factory.getbasetemp())
    request.config.stash[REPORT] = report
    yield report


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    report = config.stash.get(REPORT, None)
    if report is None or not report.rows:
        return
    terminalreporter.write_sep("=", "chaos figures")
    for line in report.markdown().splitlines():
        terminalreporter.write_line(line)
    terminalreporter.write_line(f"summary files: {report.directory}/chaos-summary.{{json,md}}")
