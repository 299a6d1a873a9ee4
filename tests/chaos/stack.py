"""One chaos scenario's processes: its own Temporal dev server (on a SQLite file under
`tmp_path`, since a scenario may kill it), workers running `python worker.py` and APIs under
uvicorn; the fake Resend runs in-process so the test reads its deliveries directly.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from temporalio.client import Client

from testkit.dev_server import DevServer
from testkit.fake_resend import FakeResendServer
from testkit.keys import API_KEY, CODEC_KEYS, FAKE_KEY, INVITE_TOKEN_SECRET
from testkit.procs import Proc, free_port
from testkit.stack import api_proc, start_api, start_worker, worker_proc

# For a scenario whose faults are counted in provider requests, one per email (50 500s in an
# outage, held answers, attempts per worker, a storm of 429s): each email its own call, as
# 1.0 sent them. Coalescing is on by default; the rows without this run coalesced (kill -9
# of a worker or of Temporal, a 429 retry-after, failover) and tests/chaos/
# test_coalesce_chaos.py adds 500s and held answers to a coalesced burst.
ONE_CALL_PER_EMAIL = {"COALESCE_SHARDS": "0"}

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
        "INVITE_TOKEN_SECRET": INVITE_TOKEN_SECRET,
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
        self,
        *,
        workers: int = 1,
        apis: int = 1,
        resend_timeout: float = 2.0,
        extra_env: dict[str, str] | None = None,
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
        env.update(extra_env or {})
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
