"""`make dev`: Temporal dev server (SQLite, Web UI), worker and API in one terminal.

Ctrl-C stops all three. State persists in `.dev/temporal.db`, so accepted emails survive a
restart of `make dev`. The dev API key (`.dev/api_key`) and payload encryption key
(`.dev/codec_keys`) are generated once and reused, so that database stays readable; the Web
UI decodes payloads through the API's codec server.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from infra.codec import new_codec_key
from testkit.dev_server import dynamic_config_flags, temporal_binary
from workflows.search_attributes import NAMES as SEARCH_ATTRIBUTES

ROOT = Path(__file__).resolve().parent.parent
DEV = ROOT / ".dev"
TEMPORAL_PORT = int(os.environ.get("DEV_TEMPORAL_PORT", "7233"))
UI_PORT = int(os.environ.get("DEV_UI_PORT", "8233"))
API_PORT = int(os.environ.get("DEV_API_PORT", "8000"))

log = logging.getLogger("dev")


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_until(
    what: str, check: Callable[[], bool], timeout: float, procs: dict[str, subprocess.Popen[bytes]]
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        for name, proc in procs.items():
            if proc.poll() is not None:
                raise SystemExit(
                    f"{name} exited with {proc.returncode} before {what}; the end of "
                    f"{DEV / name}.log:\n{log_tail(DEV / f'{name}.log')}"
                )
        time.sleep(0.1)
    raise SystemExit(f"timed out waiting for {what} (logs in {DEV}/*.log)")


def log_tail(path: Path, lines: int = 20) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def spawn(name: str, args: list[str], log_dir: Path, **popen: Any) -> subprocess.Popen[bytes]:
    """Start a child whose output (its logs: stdout and stderr) goes to `<log_dir>/<name>.log`."""
    with open(log_dir / f"{name}.log", "ab") as log_file:
        return subprocess.Popen(args, stdout=log_file, stderr=subprocess.STDOUT, **popen)


def api_ready() -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{API_PORT}/readyz", timeout=1) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def dev_secret(name: str, make: Callable[[], str]) -> str:
    """The secret in `.dev/<name>`, created (owner-only) on the first run."""
    path = DEV / name
    if not path.exists():
        path.touch(mode=0o600)
        path.write_text(make() + "\n")
    return path.read_text().strip()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    DEV.mkdir(exist_ok=True)
    for port in (TEMPORAL_PORT, UI_PORT, API_PORT):
        if port_open(port):
            sys.exit(f"port {port} is already in use: stop what runs there, or set DEV_*_PORT")
    env = {**os.environ, "TEMPORAL_ADDRESS": f"127.0.0.1:{TEMPORAL_PORT}"}
    env.setdefault("APP_BASE_URL", f"http://localhost:{API_PORT}")
    env.setdefault("API_KEYS", dev_secret("api_key", lambda: "dm_dev_" + secrets.token_urlsafe(24)))
    env.setdefault(
        "PAYLOAD_CODEC_KEYS",
        dev_secret("codec_keys", lambda: new_codec_key("dev-1")),
    )
    env.setdefault("CODEC_CORS_ORIGINS", f"http://localhost:{UI_PORT}")
    # The local Web UI cannot send an API key: let it decode from this machine only.
    env.setdefault("CODEC_TRUST_LOCAL_UI", "true")
    api_key = env["API_KEYS"].split(",")[0].strip()
    codec_endpoint = f"http://localhost:{API_PORT}/codec"
    server_args = [
        temporal_binary(), "server", "start-dev",
        "--ip", "127.0.0.1", "--port", str(TEMPORAL_PORT), "--ui-port", str(UI_PORT),
        "--db-filename", str(DEV / "temporal.db"),
        "--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal",
        "--log-level", "warn", "--ui-codec-endpoint", codec_endpoint,
        # Task-queue priority and fairness (transactional before bulk, tenants share).
        *dynamic_config_flags(),
    ]  # fmt: skip
    for name in SEARCH_ATTRIBUTES:
        server_args += ["--search-attribute", f"{name}=Keyword"]
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        procs["temporal"] = spawn("temporal", server_args, DEV)
        wait_until("the Temporal server", lambda: port_open(TEMPORAL_PORT), 30, procs)
        procs["worker"] = spawn("worker", [sys.executable, "worker.py"], DEV, cwd=ROOT, env=env)
        procs["api"] = spawn(
            "api",
            [sys.executable, "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1",
             "--port", str(API_PORT), "--no-access-log"],
            DEV, cwd=ROOT, env=env,
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
            "  Temporal   127.0.0.1:%d\n"
            "  Logs       tail -f .dev/worker.log .dev/api.log  (and .dev/temporal.log)\n"
            "  Codec      %s  (payloads are encrypted; the Web UI decodes here)\n"
            "  API key    %s  (.dev/api_key)\n\n"
            "  Try:\n"
            "  KEY=$(cat .dev/api_key)\n"
            "  curl -s -X POST http://localhost:%d/v1/invites -H \"Authorization: Bearer $KEY\" \\\n"  # noqa: E501
            "       -H 'Content-Type: application/json' \\\n"
            "       -d '{\"email\": \"ann@example.com\", \"tenant_name\": \"Acme\", \"inviter_name\": \"Bob\"}'\n"  # noqa: E501
            "  curl -s -H \"Authorization: Bearer $KEY\" http://localhost:%d/v1/emails/<invite_id>\n"  # noqa: E501
            "  .venv/bin/temporal workflow show -w invite-<id> --address 127.0.0.1:%d \\\n"
            "       --codec-endpoint %s --codec-auth \"Bearer $KEY\" --detailed\n\n"
            "  Ctrl-C stops everything.\n",
            mode, API_PORT, UI_PORT, API_PORT, TEMPORAL_PORT, codec_endpoint, api_key,
            API_PORT, API_PORT, TEMPORAL_PORT, codec_endpoint,
        )  # fmt: skip
        stopped = False

        def stop(_sig: int, _frame: object) -> None:
            nonlocal stopped
            stopped = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        while not stopped and all(p.poll() is None for p in procs.values()):
            time.sleep(0.2)
        for name, proc in procs.items():
            if proc.returncode is not None:
                log.error("%s exited with %s; see %s/%s.log", name, proc.returncode, DEV, name)
    finally:
        for proc in reversed(procs.values()):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in reversed(procs.values()):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        log.info("stopped")


if __name__ == "__main__":
    main()
