"""`make dev PROVIDER=fake` with `make fault`: a newcomer provokes failures and sees the retries.

The fake Resend, the worker and the API are started the way scripts/dev.py starts them (its
`spawn`, `fake_resend_args`, `fake_provider_env`) on free ports, against the session's
Temporal server; faults are queued with the command `make fault` runs (scripts/fault.py).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from config import Settings
from testkit.fake_resend import Fault, fault_of_kind
from testkit.keys import API_KEY, INVITE_TOKEN_SECRET
from testkit.polling import eventually
from testkit.procs import free_port, port_open, stop_popen
from tests.helpers import INVITE, ROOT, dev_env, dev_script, wait_for_status


def make_fault(url: str, kind: str, count: int = 1) -> None:
    """What `make fault KIND=<kind> COUNT=<count>` runs, pointed at this test's fake."""
    subprocess.run(
        [sys.executable, "scripts/fault.py", kind, "--count", str(count), "--url", url],
        cwd=ROOT,
        check=True,
        timeout=30,
    )


def test_fault_kinds_are_a_server_error_a_rate_limit_or_a_late_answer() -> None:
    assert fault_of_kind("500") == Fault(status=500)
    assert fault_of_kind("429", retry_after=3) == Fault(status=429, retry_after=3)
    late = fault_of_kind("timeout")
    assert late.status == 200 and late.hold > float(dev_script().FAKE_RESEND_TIMEOUT_SECONDS)
    with pytest.raises(ValueError):
        fault_of_kind("slow")


async def test_fake_provider_dev_mode_shows_provoked_retries_in_the_email_status(
    settings: Settings, tmp_path: Path
) -> None:
    dev = dev_script()
    fake_port, api_port = free_port(), free_port()
    fake_url = f"http://127.0.0.1:{fake_port}"
    env = {
        **dev_env(settings, tmp_path, api_keys=API_KEY),
        "INVITE_TOKEN_SECRET": INVITE_TOKEN_SECRET,
        **dev.fake_provider_env(fake_url),
    }
    uvicorn = [sys.executable, "-m", "uvicorn", "api.main:app", "--port", str(api_port)]
    procs = [dev.spawn("fake_resend", dev.fake_resend_args(fake_port), tmp_path, cwd=ROOT)]
    try:
        procs.append(
            dev.spawn("worker", [sys.executable, "worker.py"], tmp_path, cwd=ROOT, env=env)
        )
        procs.append(
            dev.spawn("api", uvicorn + ["--host", "127.0.0.1"], tmp_path, cwd=ROOT, env=env)
        )

        async def fake_up() -> bool:
            return port_open(fake_port)

        await eventually(fake_up, timeout=30, what="fake Resend")
        make_fault(fake_url, "500")
        make_fault(fake_url, "429")
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{api_port}",
            headers={"Authorization": f"Bearer {API_KEY}"},
            timeout=10,
        ) as api:

            async def api_ready() -> bool:
                try:
                    return (await api.get("/readyz")).status_code == 200
                except httpx.TransportError:
                    return False

            await eventually(api_ready, timeout=30, what="API ready")
            accepted = await api.post("/v1/invites", json=INVITE)
            assert accepted.status_code == 202, accepted.text
            status = await wait_for_status(api, accepted.json()["invite_id"], "sent", timeout=60)
        attempts = [(a["http_status"], a["outcome"]) for a in status["attempts"]]
        assert attempts == [(500, "transient_error"), (429, "transient_error"), (200, "accepted")]
        assert status["attempts"][1]["retry_in_seconds"] == 2  # the fault's retry-after
        assert status["transport"] == "resend"
    finally:
        for proc in reversed(procs):
            stop_popen(proc)
