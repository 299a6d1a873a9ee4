"""`make dev` writes each process's logs to `.dev/<name>.log`, where the README says they are.

The worker and the API are started the way scripts/dev.py starts them (its `spawn`), against
the session's Temporal server, and their own log lines must land in the files.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import httpx

from config import Settings
from testkit.polling import eventually
from testkit.procs import free_port, stop_popen
from tests.helpers import ROOT, dev_env, dev_script


def json_lines(path: Path) -> list[dict[str, object]]:
    lines = path.read_text(errors="replace").splitlines() if path.exists() else []
    return [json.loads(line) for line in lines if line.startswith("{")]


async def test_worker_and_api_logs_land_in_their_dev_log_files(
    settings: Settings, tmp_path: Path
) -> None:
    dev = dev_script()
    port = free_port()
    secret = "whsec_" + "bG9ncy10ZXN0LXNlY3JldC1sb2dzLXRlc3Q="
    env = {
        **dev_env(settings, tmp_path, api_keys="dm_logs_test_key_0123"),
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
        stop_popen(api)
        stop_popen(worker)
    worker_log = json_lines(tmp_path / "worker.log")
    assert any(line["msg"] == "worker stopped" for line in worker_log), worker_log
    assert secret not in (tmp_path / "api.log").read_text()
