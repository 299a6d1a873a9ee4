"""`make dev` writes each process's logs to `.dev/<name>.log`, where the README says they are.

The worker and the API are started the way scripts/dev.py starts them (its `spawn`), against
the session's Temporal server, and their own log lines must land in the files.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import httpx

from config import Settings
from testkit.keys import CODEC_KEYS
from testkit.polling import eventually

ROOT = Path(__file__).resolve().parent.parent


def dev_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dev_script", ROOT / "scripts" / "dev.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def json_lines(path: Path) -> list[dict[str, object]]:
    lines = path.read_text(errors="replace").splitlines() if path.exists() else []
    return [json.loads(line) for line in lines if line.startswith("{")]


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


async def test_worker_and_api_logs_land_in_their_dev_log_files(
    settings: Settings, tmp_path: Path
) -> None:
    dev = dev_script()
    port = free_port()
    secret = "whsec_" + "bG9ncy10ZXN0LXNlY3JldC1sb2dzLXRlc3Q="
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": settings.temporal_address,
        "TASK_QUEUE": settings.task_queue,
        "SEND_TASK_QUEUE": settings.send_task_queue,
        "OUTBOX_DIR": str(tmp_path / "outbox"),
        "WORKER_METRICS_PORT": "0",
        "API_KEYS": "dm_logs_test",
        "PAYLOAD_CODEC_KEYS": CODEC_KEYS,
        "RESEND_WEBHOOK_SECRET": secret,
    }
    env.pop("RESEND_API_KEY", None)
    uvicorn = [sys.executable, "-m", "uvicorn", "api.main:app", "--port", str(port)]
    worker = dev.spawn("worker", [sys.executable, "worker.py"], tmp_path, cwd=ROOT, env=env)
    api = dev.spawn("api", uvicorn + ["--host", "127.0.0.1"], tmp_path, cwd=ROOT, env=env)
    try:

        async def worker_ready() -> bool:
            return any(
                str(line["msg"]).startswith("worker ready")
                for line in json_lines(tmp_path / "worker.log")
            )

        await eventually(worker_ready, timeout=30)

        async def rejected_webhook_logged() -> bool:
            # An unsigned webhook is refused and logged by the API (a JSON line, no secret).
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
                try:
                    await http.post("/v1/webhooks/resend", content=b"{}")
                except httpx.TransportError:
                    return False
            return any(
                str(line["msg"]).startswith("webhook rejected")
                for line in json_lines(tmp_path / "api.log")
            )

        await eventually(rejected_webhook_logged, timeout=30, interval=0.2)
    finally:
        stop(api)
        stop(worker)
    worker_log = json_lines(tmp_path / "worker.log")
    assert any(line["msg"] == "worker stopped" for line in worker_log), worker_log
    assert secret not in (tmp_path / "api.log").read_text()
