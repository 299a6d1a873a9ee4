"""The systems under test as processes: the dev server, our API and worker, the baselines,
and the yardstick worker. Each is started on free 127.0.0.1 ports, waited for by condition
(an open port, or a poller with the worker's PID on its task queue) and recorded in
`STARTED`, so that the run stops every one of them by PID at the end.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from bench.minimal_workflow import TASK_QUEUE as MINIMAL_TASK_QUEUE
from config import Settings
from testkit.dev_server import DYNAMIC_CONFIG, DevServer
from testkit.keys import API_KEY, FAKE_KEY, INVITE_TOKEN_SECRET
from testkit.polling import eventually
from testkit.procs import Proc, free_port
from testkit.stack import API_APP, uvicorn_proc, worker_proc

# Our worker's queues, as config.py defaults them (the benchmark does not set them).
OUR_TASK_QUEUE: str = Settings.model_fields["task_queue"].default
OUR_SEND_QUEUE: str = Settings.model_fields["send_task_queue"].default
WORKFLOW = TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW
ACTIVITY = TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY

# Every process this run started, so that an interrupted run still stops them (by PID).
STARTED: list[Proc] = []


async def stop_all() -> None:
    """Stop every process this run started that is still alive, newest first."""
    for proc in reversed(STARTED):
        await proc.stop(grace=5.0)


async def print_measured(measure: Callable[[Path], Awaitable[list[str]]], prefix: str) -> None:
    """Run `measure` in a fresh temporary directory, stop what it started, print its lines."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        try:
            lines = await measure(Path(tmp))
        finally:
            await stop_all()
    print("\n".join(lines))


def kill_all() -> None:
    for proc in STARTED:
        if proc.alive:
            proc.kill9()


async def start_dev_server(
    log_dir: Path,
    db_file: Path,
    extra_args: list[str],
    *,
    name: str = "temporal_server",
    dynamic_config: dict[str, object] = DYNAMIC_CONFIG,
) -> DevServer:
    """The dev server as `make dev` runs it (`dynamic_config={}`: without priority and
    fairness, the server's defaults)."""
    server = DevServer.create(
        db_file, log_dir, extra_args=extra_args, name=name, dynamic_config=dynamic_config
    )
    STARTED.append(server.proc)
    await server.start()
    return server


async def start_uvicorn(
    name: str, app: str, log_dir: Path, env: dict[str, str], port: int | None = None
) -> tuple[Proc, str]:
    """`uvicorn APP` on a free port (or `port`, to restart in place); returns the base URL."""
    port = port or free_port()
    proc = uvicorn_proc(app, port, env, log_dir, name, log_level="warning")
    STARTED.append(proc)
    proc.start()
    await proc.wait_port(port)
    return proc, f"http://127.0.0.1:{port}"


async def start_our_api(log_dir: Path, env: dict[str, str]) -> tuple[Proc, str]:
    return await start_uvicorn("api", API_APP, log_dir, env)


async def wait_for_poller(
    client: Client,
    queues: list[tuple[str, TaskQueueType.ValueType]],
    proc: Proc,
    timeout: float = 30.0,
) -> None:
    """Wait until `proc` polls every one of `queues` (the SDK's identity is `pid@host`)."""
    requests = [
        DescribeTaskQueueRequest(
            namespace=client.namespace, task_queue=TaskQueue(name=name), task_queue_type=kind
        )
        for name, kind in queues
    ]

    async def polling() -> bool:
        for request in requests:
            response = await client.workflow_service.describe_task_queue(request)
            if not any(p.identity.startswith(f"{proc.pid}@") for p in response.pollers):
                return False
        return True

    await proc.wait_ready(polling, timeout=timeout, what="polling", interval=0.1)


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


async def workflows_idle(client: Client) -> None:
    """Wait until nothing waits on our workflow queue and no send is still unrecorded."""
    unsent = "ExecutionStatus='Running' AND EmailStatus='queued'"

    async def idle() -> bool:
        if await backlog(client, OUR_TASK_QUEUE, WORKFLOW) > 0:
            return False
        return (await client.count_workflows(unsent)).count == 0

    await eventually(idle, timeout=60, what="sends recorded", interval=0.25)


def our_env(
    server: DevServer, fake_url: str, rate_limit: float, outbox: Path, codec_key: str
) -> dict[str, str]:
    """The environment our API and worker read (see config.py), pointed at the fake."""
    return {
        "TEMPORAL_ADDRESS": server.address,
        "TEMPORAL_NAMESPACE": "default",
        "RESEND_API_KEY": FAKE_KEY,
        "RESEND_API_URL": fake_url,
        "EMAIL_FROM": "Acme <invites@bench.example>",
        "APP_BASE_URL": "http://localhost:8000",
        "RESEND_RATE_LIMIT_PER_SECOND": str(rate_limit),
        "API_KEYS": API_KEY,
        # As `make dev` runs it: payloads encrypted in Temporal (costs CPU in API and worker).
        "PAYLOAD_CODEC_KEYS": codec_key,
        "INVITE_TOKEN_SECRET": INVITE_TOKEN_SECRET,
        "OUTBOX_DIR": str(outbox),
    }


def baseline_env(fake_url: str) -> dict[str, str]:
    """What the baselines read: where the provider is, and its key."""
    return {"RESEND_API_URL": fake_url, "RESEND_API_KEY": FAKE_KEY}


async def start_our_worker(
    client: Client, log_dir: Path, env: dict[str, str], name: str = "worker"
) -> Proc:
    # Its Prometheus endpoint on a free port: the default (9464) may be taken on this host.
    env = {**env, "WORKER_METRICS_HOST": "127.0.0.1", "WORKER_METRICS_PORT": str(free_port())}
    proc = worker_proc(env, log_dir, name)
    STARTED.append(proc)
    proc.start()
    await wait_for_poller(client, [(OUR_TASK_QUEUE, WORKFLOW), (OUR_SEND_QUEUE, ACTIVITY)], proc)
    return proc


async def start_minimal_worker(client: Client, server: DevServer, log_dir: Path) -> Proc:
    args = [sys.executable, "-m", "bench.temporal_probe", "worker", "--address", server.address]
    proc = Proc("minimal_worker", args, {}, log_dir / "minimal_worker.log")
    STARTED.append(proc)
    proc.start()
    await wait_for_poller(client, [(MINIMAL_TASK_QUEUE, WORKFLOW)], proc)
    return proc


def start_probe(mode: str, server: DevServer, log_dir: Path, args: list[str]) -> Proc:
    """`python -m bench.temporal_probe MODE`, its one JSON line read on stdout."""
    argv = [sys.executable, "-m", "bench.temporal_probe", mode, "--address", server.address]
    name = f"probe_{mode}"
    proc = Proc(name, [*argv, *args], {}, log_dir / f"{name}.log", stdout_pipe=True)
    STARTED.append(proc)
    proc.start()
    return proc
