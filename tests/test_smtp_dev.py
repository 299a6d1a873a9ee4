"""`make dev PROVIDER=smtp`: the local SMTP relay, the worker and the API started the way
scripts/dev.py starts them (its `spawn`, `smtp_relay_args`, `smtp_provider_env`) on free
ports, against the session's Temporal server. An invite reaches the relay's directory as a
`.eml` file, and the worker, which has no Resend key, does not claim to be in outbox mode.
"""

from __future__ import annotations

import email
import email.policy
import os
from pathlib import Path

import httpx

from config import Settings
from testkit.keys import API_KEY
from testkit.polling import eventually
from testkit.procs import free_port, port_open, stop_popen
from testkit.stack import api_proc, start_api, start_worker, worker_env, worker_proc
from tests.helpers import INVITE, ROOT, dev_script, wait_for_status


async def test_dev_smtp_mode_delivers_an_invite_to_the_local_relay(
    settings: Settings, tmp_path: Path
) -> None:
    dev = dev_script()
    smtp_port, api_port = free_port(), free_port()
    mail_dir, password = tmp_path / "smtp", "dev-relay-password"
    # The worker and API as tests run them, with what `make dev PROVIDER=smtp` adds.
    env = {
        **worker_env(settings),
        "RESEND_API_KEY": "",
        "PROVIDERS": "smtp",
        **dev.smtp_provider_env(smtp_port, mail_dir, password),
    }
    relay = dev.spawn(
        "smtp",
        dev.smtp_relay_args(smtp_port, mail_dir),
        tmp_path,
        cwd=ROOT,
        env={**os.environ, "DEV_SMTP_PASSWORD": password},
    )
    worker, api = worker_proc(env, tmp_path), api_proc(env, tmp_path, api_port)
    try:
        await eventually(lambda: port_open(smtp_port), timeout=30, what="SMTP relay")
        await start_worker(worker)
        await start_api(api, f"http://127.0.0.1:{api_port}")
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{api_port}", headers={"Authorization": f"Bearer {API_KEY}"}
        ) as client:
            accepted = await client.post("/v1/invites", json=INVITE)
            assert accepted.status_code == 202, accepted.text
            invite_id = accepted.json()["invite_id"]
            status = await wait_for_status(client, invite_id, "sent", timeout=60)
    finally:
        await api.stop()
        await worker.stop()
        stop_popen(relay)
    assert status["provider"] == "smtp" and status["attempt_count"] == 1
    [written] = sorted(mail_dir.glob("*.eml"))
    mime = email.message_from_bytes(written.read_bytes(), policy=email.policy.default)
    assert mime["To"] == INVITE["email"] and mime["Message-ID"] == status["provider_message_id"]
    worker_log = (tmp_path / "worker.log").read_text()
    assert "OUTBOX MODE" not in worker_log and "sending through smtp" in worker_log
    assert password not in worker_log + (tmp_path / "smtp.log").read_text()
