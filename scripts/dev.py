"""`make dev`: Temporal dev server (SQLite, Web UI), worker and API in one terminal.

Ctrl-C stops all three. State persists in `.dev/temporal.db`, so accepted emails survive a
restart of `make dev`. The dev API key (`.dev/api_key`, an operator key), the payload
encryption key (`.dev/codec_keys`) and the Web UI's codec secret (`.dev/codec_ui_secret`)
are generated once and reused, so that database stays readable; the Web UI decodes payloads
through the API's codec server, at a capability URL that carries that secret.

Across a code change: the worker runs as a Worker Deployment Version whose build id is a
hash of workflows/ and activities/ (config.source_build_id), and each build `make dev` runs is
snapshotted into `.dev/builds/<build-id>/`. On start, a worker also runs from every earlier
snapshot that still has open Pinned executions (a visibility query on
TemporalWorkerDeploymentVersion), so sends in flight finish on the code that started them;
the new build is made current and takes new sends. Drained snapshots are deleted.

`make dev PROVIDER=fake` sends through the bundled fake Resend (testkit.fake_resend) instead
of the outbox or Resend: nothing leaves the machine, and `make fault KIND=500|429|timeout`
makes the next sends fail, so retries show in the Web UI.

`make dev PROVIDER=smtp` sends through a local SMTP relay (testkit.smtp_server: STARTTLS on a
certificate it makes, AUTH), `PROVIDERS=smtp`; what it receives is in `.dev/smtp/*.eml`.
`make dev PROVIDER=failover` runs both, `PROVIDERS=resend,smtp`: `make fault KIND=401` makes
Resend refuse the next attempt and the email moves to SMTP; `KIND=500` is retried on Resend.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from config import DEPLOYMENT_NAME, source_build_id
from infra.codec import new_codec_key
from testkit.dev_server import dynamic_config_flags, temporal_binary
from testkit.fake_resend import DEFAULT_API_KEY as FAKE_API_KEY
from testkit.smtp_server import USER as SMTP_USER
from workflows.search_attributes import NAMES as SEARCH_ATTRIBUTES

ROOT = Path(__file__).resolve().parent.parent
DEV = ROOT / ".dev"
TEMPORAL_PORT = int(os.environ.get("DEV_TEMPORAL_PORT", "7233"))
UI_PORT = int(os.environ.get("DEV_UI_PORT", "8233"))
API_PORT = int(os.environ.get("DEV_API_PORT", "8000"))
FAKE_PORT = int(os.environ.get("DEV_FAKE_PORT", "8025"))
SMTP_PORT = int(os.environ.get("DEV_SMTP_PORT", "2525"))
# What the local relay received (`make dev PROVIDER=smtp|failover`), and its certificate.
SMTP_DIR = DEV / "smtp"
# Where `make fault` (scripts/fault.py) finds the fake.
FAKE_URL_FILE = DEV / "fake_resend_url"
# Below the fake's `timeout` fault hold (testkit.fake_resend.TIMEOUT_HOLD_SECONDS).
FAKE_RESEND_TIMEOUT_SECONDS = "5"

# Each build's source tree, as it ran (see the module docstring).
BUILDS = DEV / "builds"
SNAPSHOT_IGNORE = shutil.ignore_patterns(
    ".dev", ".venv", ".git", "tests", "docs", "bench", "__pycache__", "*.egg-info",
    "node_modules", ".mypy_cache", ".ruff_cache", ".pytest_cache",
)  # fmt: skip

log = logging.getLogger("dev")


def snapshot_build(root: Path = ROOT, builds: Path = BUILDS) -> tuple[str, Path]:
    """This checkout's build id, and its source tree copied to `builds/<build-id>/` (once)."""
    build_id = source_build_id(root)
    target = builds / build_id
    if not target.is_dir():
        partial = builds / f".{build_id}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(root, partial, ignore=SNAPSHOT_IGNORE)
        partial.rename(target)
    return build_id, target


def earlier_builds(current: str, builds: Path = BUILDS) -> list[str]:
    """The snapshots of builds other than `current`, by name."""
    if not builds.is_dir():
        return []
    return sorted(
        p.name for p in builds.iterdir() if p.is_dir() and not p.name.startswith(".")
        and p.name != current
    )  # fmt: skip


def split_by_open_work(
    builds: list[str], pinned_open: Callable[[str], int]
) -> tuple[list[str], list[str]]:
    """(builds that still have open Pinned executions: run them, drained builds)."""
    running = [build for build in builds if pinned_open(build) > 0]
    return running, [build for build in builds if build not in running]


def pinned_open_query(build_id: str, deployment: str = DEPLOYMENT_NAME) -> str:
    """Visibility query: open executions pinned to that build (Auto-Upgrade ones move on)."""
    return (
        f"TemporalWorkerDeploymentVersion='{deployment}:{build_id}' AND "
        "TemporalWorkflowVersioningBehavior='Pinned' AND ExecutionStatus='Running'"
    )


def pinned_open_count(address: str, build_id: str, deployment: str = DEPLOYMENT_NAME) -> int:
    """How many open executions are pinned to `build_id` (`temporal workflow count`)."""
    done = subprocess.run(
        [temporal_binary(), "workflow", "count", "--address", address,
         "--query", pinned_open_query(build_id, deployment)],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    return int(done.stdout.split("Total:")[1].split()[0])


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


def fake_resend_args(port: int) -> list[str]:
    """The bundled fake Resend as its own process on 127.0.0.1:`port`."""
    return [sys.executable, "-m", "testkit.fake_resend", "--port", str(port)]


def fake_provider_env(url: str) -> dict[str, str]:
    """What makes the worker send through the fake at `url`: its key, never a real one."""
    return {
        "RESEND_API_KEY": FAKE_API_KEY,
        "RESEND_API_URL": url,
        "RESEND_TIMEOUT_SECONDS": FAKE_RESEND_TIMEOUT_SECONDS,
    }


def smtp_relay_args(port: int, directory: Path) -> list[str]:
    """The local SMTP relay as its own process on 127.0.0.1:`port` (its password from the
    environment, DEV_SMTP_PASSWORD, never the command line)."""
    return [
        sys.executable, "-m", "testkit.smtp_server", "--port", str(port), "--dir", str(directory)
    ]  # fmt: skip


def smtp_provider_env(port: int, directory: Path, password: str) -> dict[str, str]:
    """What makes the worker send through that relay, its certificate trusted."""
    return {
        "SMTP_URL": f"smtp://{SMTP_USER}:{password}@127.0.0.1:{port}?starttls=true",
        "SMTP_CA_FILE": str(directory / "relay.crt"),
    }


def dev_secret(name: str, make: Callable[[], str]) -> str:
    """The secret in `.dev/<name>`, created (owner-only) on the first run."""
    path = DEV / name
    if not path.exists():
        path.touch(mode=0o600)
        path.write_text(make() + "\n")
    return path.read_text().strip()


OUTBOX_LINE = "  Outbox     http://localhost:%d/dev/outbox  (emails written here, not sent)\n"
FAKE_HINT = (
    "\n  Watch retries (fake Resend): make the next sends fail, then send an invite (above)\n"
    "  make fault KIND=500 COUNT=2      two server errors, then the send goes through\n"
    "  make fault KIND=429              rate limited: retried after its retry-after\n"
    "  make fault KIND=timeout          accepted but answered too late: the retry is deduplicated\n"  # noqa: E501
)


FAILOVER_HINT = (
    "\n  Watch failover (fake Resend, then the SMTP relay): make the next sends fail\n"
    "  make fault KIND=401              Resend refuses (revoked key): the email moves to SMTP\n"
    "  make fault KIND=500              ambiguous: retried on Resend, never sent through SMTP\n"
)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = argparse.ArgumentParser(prog="make dev", description="Run durable-mail locally.")
    parser.add_argument(
        "--provider",
        choices=["auto", "fake", "smtp", "failover"],
        default="auto",
        help="auto: Resend if RESEND_API_KEY is set, else the outbox; fake: the bundled fake; "
        "smtp: a local SMTP relay; failover: the fake, then the relay",
    )
    provider = parser.parse_args().provider
    fake, relay = provider in ("fake", "failover"), provider in ("smtp", "failover")
    DEV.mkdir(exist_ok=True)
    ports = (TEMPORAL_PORT, UI_PORT, API_PORT) + ((FAKE_PORT,) if fake else ())
    ports += (SMTP_PORT,) if relay else ()
    for port in ports:
        if port_open(port):
            sys.exit(f"port {port} is already in use: stop what runs there, or set DEV_*_PORT")
    env = {**os.environ, "TEMPORAL_ADDRESS": f"127.0.0.1:{TEMPORAL_PORT}"}
    env.setdefault("APP_BASE_URL", f"http://localhost:{API_PORT}/dev/outbox")  # dev_accept.py
    env.setdefault("DEV_PAGES", "true")  # /dev/outbox and that accept page: make dev only
    env.setdefault("API_KEYS", dev_secret("api_key", lambda: "dm_dev_" + secrets.token_urlsafe(24)))
    env.setdefault(
        "PAYLOAD_CODEC_KEYS",
        dev_secret("codec_keys", lambda: new_codec_key("dev-1")),
    )
    env.setdefault(
        "INVITE_TOKEN_SECRET", dev_secret("invite_token_secret", lambda: secrets.token_urlsafe(32))
    )
    # The worker runs as this build's Worker Deployment Version and makes it current.
    env.setdefault("WORKER_SET_CURRENT", "true")
    env.setdefault("OUTBOX_DIR", str(DEV / "outbox"))  # absolute: snapshot workers too
    env.setdefault("CODEC_CORS_ORIGINS", f"http://localhost:{UI_PORT}")
    # The Web UI cannot send an API key: it decodes at /codec/<secret>/..., a URL only the
    # UI's settings hold (the secret never appears in the API's logs).
    env.setdefault(
        "CODEC_UI_SECRET", dev_secret("codec_ui_secret", lambda: secrets.token_urlsafe(32))
    )
    api_key = env["API_KEYS"].split(",")[0].strip()
    codec_endpoint = f"http://localhost:{API_PORT}/codec"
    ui_codec_endpoint = f"{codec_endpoint}/{env['CODEC_UI_SECRET']}"
    server_args = [
        temporal_binary(), "server", "start-dev",
        "--ip", "127.0.0.1", "--port", str(TEMPORAL_PORT), "--ui-port", str(UI_PORT),
        "--db-filename", str(DEV / "temporal.db"),
        "--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal",
        "--log-level", "warn", "--ui-codec-endpoint", ui_codec_endpoint,
        # Task-queue priority and fairness (transactional before bulk, tenants share).
        *dynamic_config_flags(),
    ]  # fmt: skip
    for name in SEARCH_ATTRIBUTES:
        server_args += ["--search-attribute", f"{name}=Keyword"]
    fake_url = f"http://127.0.0.1:{FAKE_PORT}"
    if fake:
        env.update(fake_provider_env(fake_url))
    if relay:
        password = dev_secret("smtp_password", lambda: secrets.token_urlsafe(18))
        env.update(smtp_provider_env(SMTP_PORT, SMTP_DIR, password))
        env["PROVIDERS"] = "resend,smtp" if fake else "smtp"
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        procs["temporal"] = spawn("temporal", server_args, DEV)
        if fake:
            procs["fake_resend"] = spawn("fake_resend", fake_resend_args(FAKE_PORT), DEV, cwd=ROOT)
            wait_until("the fake Resend", lambda: port_open(FAKE_PORT), 30, procs)
            FAKE_URL_FILE.write_text(fake_url + "\n")
        if relay:
            procs["smtp"] = spawn(
                "smtp", smtp_relay_args(SMTP_PORT, SMTP_DIR), DEV, cwd=ROOT,
                env={**os.environ, "DEV_SMTP_PASSWORD": password},
            )  # fmt: skip
            wait_until("the SMTP relay", lambda: port_open(SMTP_PORT), 30, procs)
        wait_until("the Temporal server", lambda: port_open(TEMPORAL_PORT), 30, procs)
        build_id, _ = snapshot_build()
        address = env["TEMPORAL_ADDRESS"]
        older, drained = split_by_open_work(
            earlier_builds(build_id), lambda build: pinned_open_count(address, build)
        )
        for build in drained:
            shutil.rmtree(BUILDS / build, ignore_errors=True)
        for build in older:
            log.info("build %s still has pinned sends in flight: running its worker too", build)
            snapshot = BUILDS / build
            procs[f"worker-{build}"] = spawn(
                f"worker-{build}", [sys.executable, "worker.py"], DEV, cwd=snapshot,
                env={**env, "PYTHONPATH": str(snapshot), "WORKER_BUILD_ID": build,
                     "WORKER_SET_CURRENT": "false", "WORKER_METRICS_PORT": "0"},
            )  # fmt: skip
        # This build's worker makes its version current: new sends start on it.
        procs["worker"] = spawn(
            "worker", [sys.executable, "worker.py"], DEV, cwd=ROOT,
            env={**env, "WORKER_BUILD_ID": build_id},
        )  # fmt: skip
        procs["api"] = spawn(
            "api",
            [sys.executable, "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1",
             "--port", str(API_PORT), "--no-access-log"],
            DEV, cwd=ROOT, env=env,
        )  # fmt: skip
        wait_until("the API", api_ready, 30, procs)
        if relay:
            first = f"fake Resend at {fake_url}, then " if fake else ""
            mode = f"{first}SMTP relay 127.0.0.1:{SMTP_PORT}, mail in {SMTP_DIR}/*.eml"
        elif fake:
            mode = f"fake Resend at {fake_url}: nothing leaves this machine"
        elif env.get("RESEND_API_KEY"):
            mode = "Resend"
        else:
            mode = f"dev outbox (no RESEND_API_KEY): {DEV}/outbox"
        log.info(
            "\n  durable-mail is running (%s)\n"
            "  API        http://localhost:%d  (docs: /docs)\n"
            "  Web UI     http://localhost:%d  (Temporal: every send and attempt)\n"
            "%s"  # the outbox, when this run writes to it (not with Resend or the fake)
            "  Temporal   127.0.0.1:%d\n"
            "  Logs       tail -f .dev/worker.log .dev/api.log  (and .dev/temporal.log)\n"
            "  Codec      %s  (payloads are encrypted; decode with the API key)\n"
            "  API key    %s  (.dev/api_key)\n\n"
            "  Try:\n"
            "  KEY=$(cat .dev/api_key)\n"
            "  curl -s -X POST http://localhost:%d/v1/invites -H \"Authorization: Bearer $KEY\" \\\n"  # noqa: E501
            "       -H 'Content-Type: application/json' \\\n"
            "       -d '{\"email\": \"ann@example.com\", \"tenant_name\": \"Acme\", \"inviter_name\": \"Bob\"}'\n"  # noqa: E501
            "  curl -s -H \"Authorization: Bearer $KEY\" http://localhost:%d/v1/emails/<invite_id>\n"  # noqa: E501
            "  .venv/bin/temporal workflow show -w invite-<id> --address 127.0.0.1:%d \\\n"
            "       --codec-endpoint %s --codec-auth \"Bearer $KEY\" --detailed\n"
            "%s\n"
            "  Ctrl-C stops everything.\n",
            mode, API_PORT, UI_PORT, OUTBOX_LINE % API_PORT if "outbox" in mode else "", TEMPORAL_PORT, codec_endpoint, api_key,  # noqa: E501
            API_PORT, API_PORT, TEMPORAL_PORT, codec_endpoint,
            (FAILOVER_HINT if relay else FAKE_HINT) if fake else "",
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
        FAKE_URL_FILE.unlink(missing_ok=True)
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
