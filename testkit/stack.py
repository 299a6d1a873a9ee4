"""Our own processes, as tests and the bench run them: `python worker.py` and the API under
uvicorn, each with the environment it reads (see config.py)."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

import httpx

from config import Settings
from testkit.procs import Proc

API_APP = "api.main:app"
# What worker.py logs once it polls both task queues.
WORKER_READY = "worker ready"


def worker_proc(env: Mapping[str, str], log_dir: Path, name: str = "worker") -> Proc:
    """`python worker.py` with `env` added to ours. Like `make dev`, it makes its Worker
    Deployment Version current once it polls, unless `env` says WORKER_SET_CURRENT=false."""
    env = {"WORKER_SET_CURRENT": "true", **env}
    return Proc(name, [sys.executable, "worker.py"], env, log_dir / f"{name}.log")


async def start_worker(proc: Proc, timeout: float = 30.0) -> None:
    """Start (or restart) a worker and wait until it polls both task queues."""
    proc.start()
    await proc.wait_ready(
        lambda: WORKER_READY in proc.log_since_start(), timeout=timeout, what="worker ready"
    )


def uvicorn_proc(
    app: str,
    port: int,
    env: Mapping[str, str],
    log_dir: Path,
    name: str,
    *,
    log_level: str | None = None,
) -> Proc:
    """`uvicorn APP` on 127.0.0.1:`port`, without access log."""
    args = [
        sys.executable, "-m", "uvicorn", app,
        "--host", "127.0.0.1", "--port", str(port), "--no-access-log",
    ]  # fmt: skip
    if log_level is not None:
        args += ["--log-level", log_level]
    return Proc(name, args, env, log_dir / f"{name}.log")


def api_proc(env: Mapping[str, str], log_dir: Path, port: int, name: str = "api") -> Proc:
    """Our API under uvicorn on 127.0.0.1:`port`."""
    return uvicorn_proc(API_APP, port, env, log_dir, name)


async def start_api(proc: Proc, url: str, timeout: float = 30.0) -> None:
    """Start (or restart) an API and wait until its /healthz answers 200."""
    proc.start()

    def healthy() -> bool:
        try:
            return httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    await proc.wait_ready(healthy, timeout=timeout, what="/healthz")


def worker_env(settings: Settings) -> dict[str, str]:
    """The environment that makes `python worker.py` run with these settings."""
    assert settings.resend_api_key is not None
    return {
        "TEMPORAL_ADDRESS": settings.temporal_address,
        "TASK_QUEUE": settings.task_queue,
        "SEND_TASK_QUEUE": settings.send_task_queue,
        "WORKER_VERSIONING": str(settings.worker_versioning).lower(),
        "WORKER_DEPLOYMENT_NAME": settings.worker_deployment_name,
        "WORKER_BUILD_ID": settings.worker_build_id,
        "WORKER_SET_CURRENT": str(settings.worker_set_current).lower(),
        "RESEND_API_KEY": settings.resend_api_key.get_secret_value(),
        "RESEND_API_URL": settings.resend_api_url,
        "RESEND_TIMEOUT_SECONDS": str(settings.resend_timeout_seconds),
        "RESEND_RATE_LIMIT_PER_SECOND": str(settings.resend_rate_limit_per_second),
        # The API puts it in each send's policy (the worker only follows it).
        "COALESCE_SHARDS": str(settings.coalesce_shards),
        "OUTBOX_DIR": str(settings.outbox_dir),
        "API_KEYS": settings.api_keys.get_secret_value() if settings.api_keys else "",
        "PAYLOAD_CODEC_KEYS": (
            settings.payload_codec_keys.get_secret_value() if settings.payload_codec_keys else ""
        ),
        "INVITE_TOKEN_SECRET": (
            settings.invite_token_secret.get_secret_value() if settings.invite_token_secret else ""
        ),
    }
