"""The 0.1.0 -> 1.0 upgrade as a deploy does it (docs/upgrading.md), with real processes.

The previous release (infra/releases.py) is checked out from git into a worktree; its worker
and API run from there (this venv's python, cwd and PYTHONPATH the worktree) against a dev
server of this test, on 0.1.0's queues. Sends and an invite start on it. Then the current
worker and API come up beside it, the current build is made the deployment's Current
Version with the CLI, and the old API is replaced by the new one. Every 0.1.0 execution must
finish on 0.1.0's queues (no 1.0 worker polls them), new ones start on version 1.0, each
email reaches the (fake) provider once, and the 0.1.0 invite is accepted through the 1.0 API.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus

from config import SEND_TASK_QUEUE, SEND_TASK_QUEUE_0_1, TASK_QUEUE, TASK_QUEUE_0_1
from infra.releases import ReleaseNotFound, release_env, release_worktree
from testkit.dev_server import DevServer, temporal_binary
from testkit.fake_resend import FakeResendServer
from testkit.keys import API_KEY, CODEC_KEYS, FAKE_KEY, INVITE_TOKEN_SECRET
from testkit.polling import eventually
from testkit.procs import ROOT, Proc, free_port
from testkit.stack import API_APP, WORKER_READY, uvicorn_proc
from tests.helpers import link_token

pytestmark = [pytest.mark.timeout(240)]
log = logging.getLogger("tests.upgrade")

# The move this test makes: the last unversioned release to Worker Deployment Versions, with
# new task queues (docs/upgrading.md, "0.1.0 -> 1.0"). Upgrades between 1.x versions share
# the queues; their invites' patches are proven by replaying 1.0's invite histories on the
# current code (tests/test_replay.py).
UPGRADE_FROM = "0.1.0"
BUILD_ID = "upgrade-test-1.0"
DEPLOYMENT = "durable-mail"
# Sends wait this long for delivery events after going out, so they are still running when
# 1.0 comes up; the scheduled ones go out after it is current.
DELIVERY_WAIT = 20
SCHEDULED_IN = timedelta(seconds=25)
HEADERS = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture
def previous_release() -> Iterator[Path]:
    try:
        with release_worktree(UPGRADE_FROM) as worktree:
            yield worktree
    except ReleaseNotFound as err:
        pytest.fail(f"cannot test the upgrade from {UPGRADE_FROM}: {err}")


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[DevServer]:
    dev = DevServer.create(tmp_path / "temporal.db", tmp_path)
    await dev.start()
    yield dev
    await dev.stop()


def common_env(server: DevServer, fake: FakeResendServer, tmp_path: Path) -> dict[str, str]:
    return {
        "TEMPORAL_ADDRESS": server.address,
        "RESEND_API_KEY": FAKE_KEY,
        "RESEND_API_URL": fake.url,
        "RESEND_RATE_LIMIT_PER_SECOND": "50",
        "RESEND_TIMEOUT_SECONDS": "5",
        "SEND_INITIAL_BACKOFF_SECONDS": "0.2",
        "SEND_MAX_BACKOFF_SECONDS": "1",
        "DELIVERY_WAIT_SECONDS": str(DELIVERY_WAIT),
        "OUTBOX_DIR": str(tmp_path / "outbox"),
        "APP_BASE_URL": "https://app.example.test",
        "API_KEYS": API_KEY,
        "PAYLOAD_CODEC_KEYS": CODEC_KEYS,
        "INVITE_TOKEN_SECRET": INVITE_TOKEN_SECRET,
        "WORKER_METRICS_PORT": "0",
        # Each process's queues are its release's defaults: none set here.
        "TASK_QUEUE": "",
        "SEND_TASK_QUEUE": "",
        "WORKER_SET_CURRENT": "false",
        "WORKER_DEPLOYMENT_NAME": DEPLOYMENT,
    }


def release_procs(
    name: str, env: dict[str, str], cwd: Path, log_dir: Path, port: int
) -> tuple[Proc, Proc]:
    """`python worker.py` and the API of the code in `cwd`, with this venv's python."""
    env = {k: v for k, v in release_env(cwd, env).items() if v != ""}
    worker_log = log_dir / f"{name}-worker.log"
    worker = Proc(f"{name}-worker", [sys.executable, "worker.py"], env, worker_log)
    worker.cwd = cwd
    api = uvicorn_proc(API_APP, port, env, log_dir, f"{name}-api")
    api.env = env
    api.cwd = cwd
    return worker, api


async def start(worker: Proc, api: Proc, url: str) -> None:
    worker.start()
    api.start()
    await worker.wait_ready(
        lambda: WORKER_READY in worker.log_since_start(), timeout=60, what="worker ready"
    )

    def healthy() -> bool:
        try:
            return httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    await api.wait_ready(healthy, timeout=60, what="/healthz")


async def post(url: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=url, headers=HEADERS, timeout=10) as http:
        response = await http.post(path, json=body)
    assert response.status_code in (200, 202), (path, response.status_code, response.text)
    result: dict[str, Any] = response.json()
    return result


async def set_current(server: DevServer) -> str:
    """`temporal worker deployment set-current-version`, as an operator runs it, retried
    until the server has seen the new version's pollers."""
    args = [
        temporal_binary(), "worker", "deployment", "set-current-version",
        "--address", server.address, "--deployment-name", DEPLOYMENT,
        "--build-id", BUILD_ID, "--yes",
    ]  # fmt: skip

    async def attempt() -> str | None:
        done = await asyncio.to_thread(
            subprocess.run, args, capture_output=True, text=True, timeout=20, check=False
        )
        return done.stdout + done.stderr if done.returncode == 0 else None

    result: str = await eventually(attempt, timeout=30, interval=0.5, what="set-current-version")
    return result


async def finished(client: Client, workflow_id: str) -> bool:
    status = (await client.get_workflow_handle(workflow_id).describe()).status
    return status == WorkflowExecutionStatus.COMPLETED


async def wait_finished(client: Client, workflow_id: str, whose: str) -> None:
    await eventually(
        lambda: finished(client, workflow_id),
        timeout=DELIVERY_WAIT + 60,
        what=f"{whose} {workflow_id} completed",
    )


async def build_ids_of_workflow_tasks(client: Client, workflow_id: str) -> set[str]:
    """The build id each workflow task of the execution was completed by ("" unversioned)."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    return {
        event.workflow_task_completed_event_attributes.deployment_version.build_id
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
    }


async def test_upgrade_from_the_previous_release_beside_it(
    previous_release: Path, server: DevServer, tmp_path: Path
) -> None:
    started = time.monotonic()
    old_port, new_port = free_port(), free_port()
    old_url, new_url = f"http://127.0.0.1:{old_port}", f"http://127.0.0.1:{new_port}"
    client = await server.client()
    with FakeResendServer() as fake:
        env = common_env(server, fake, tmp_path)
        old_worker, old_api = release_procs("old", env, previous_release, tmp_path, old_port)
        new_worker, new_api = release_procs(
            "new", {**env, "WORKER_BUILD_ID": BUILD_ID}, ROOT, tmp_path, new_port
        )
        procs = [old_worker, old_api, new_worker, new_api]
        try:
            await start(old_worker, old_api, old_url)
            # On 0.1.0: sends that go out now (and then wait for delivery events), sends
            # scheduled for after the upgrade, and an invite.
            send_at = (datetime.now(UTC) + SCHEDULED_IN).isoformat()
            old_sends = [
                await post(old_url, "/v1/emails", {"to": f"old-{i}@example.com", **body})
                for i, body in enumerate(
                    [{"subject": "now", "text": "hi"}] * 2
                    + [{"subject": "later", "text": "hi", "send_at": send_at}] * 2
                )
            ]
            invite = await post(
                old_url,
                "/v1/invites",
                {"email": "invitee@example.com", "tenant_name": "Acme", "inviter_name": "Bob"},
            )
            await eventually(
                lambda: len(fake.fake.deliveries) >= 3, timeout=30, what="0.1.0's first sends"
            )

            # 1.0 beside it, made current, then the API replaced.
            await start(new_worker, new_api, new_url)
            answer = await set_current(server)
            log.info("set-current-version: %s", " ".join(answer.split()))
            await old_api.stop()
            old_ids = [s["workflow_id"] for s in old_sends] + [invite["workflow_id"]]
            running = [wid for wid in old_ids if not await finished(client, wid)]
            log.info("0.1.0 executions running when 1.0 became current: %d", len(running))
            assert len(running) == len(old_ids), "the upgrade came too late to test a drain"

            new_sends = [
                await post(new_url, "/v1/emails", {"to": f"new-{i}@example.com", **body})
                for i, body in enumerate([{"subject": "1.0", "text": "hi"}] * 2)
            ]
            new_invite = await post(
                new_url,
                "/v1/invites",
                {"email": "new-invitee@example.com", "tenant_name": "Acme", "inviter_name": "B"},
            )

            # The 0.1.0 invite is accepted through the 1.0 API (its 0.1.0 worker applies it).
            [email] = fake.fake.deliveries_for("invitee@example.com")
            token = link_token(email.payload["text"])
            accepted = await post(
                new_url, f"/v1/invites/{invite['invite_id']}/accept", {"token": token}
            )
            assert accepted["status"] == "accepted", accepted
            # ...and read there (0.1.0 named the invite's workflow `Invite`).
            async with httpx.AsyncClient(base_url=new_url, headers=HEADERS, timeout=10) as http:
                read = await http.get(f"/v1/invites/{invite['invite_id']}")
            assert read.status_code == 200 and read.json()["status"] == "accepted", read.text

            # Every execution ends: 0.1.0's on its queues and code, 1.0's on version 1.0.
            new_ids = [s["workflow_id"] for s in new_sends]
            for wid in old_ids:
                await wait_finished(client, wid, "0.1.0's")
            log.info("every 0.1.0 execution completed")
            for wid in new_ids:
                await wait_finished(client, wid, "1.0's")
            for wid in old_ids:
                info = (await client.get_workflow_handle(wid).describe()).raw_description
                assert info.workflow_execution_info.task_queue == TASK_QUEUE_0_1, wid
                assert await build_ids_of_workflow_tasks(client, wid) == {""}, wid
            for wid in [*new_ids, new_invite["workflow_id"]]:
                info = (await client.get_workflow_handle(wid).describe()).raw_description
                execution = info.workflow_execution_info
                assert execution.task_queue == TASK_QUEUE, wid
                assert execution.versioning_info.deployment_version.build_id == BUILD_ID, wid
                assert await build_ids_of_workflow_tasks(client, wid) == {BUILD_ID}, wid

            # Each email reached the provider exactly once.
            expected = [f"old-{i}@example.com" for i in range(4)]
            expected += ["invitee@example.com", "new-0@example.com", "new-1@example.com"]
            await eventually(
                lambda: bool(fake.fake.deliveries_for("new-invitee@example.com")),
                timeout=30,
                what="the 1.0 invite's email",
            )
            counts = {to: len(fake.fake.deliveries_for(to)) for to in expected}
            assert counts == dict.fromkeys(expected, 1), counts
            assert fake.fake.duplicates() == []
            log.info(
                f"upgrade {UPGRADE_FROM} -> {BUILD_ID}: {len(old_ids)} 0.1.0 executions "
                f"finished on {TASK_QUEUE_0_1}/{SEND_TASK_QUEUE_0_1}, "
                f"{len(new_ids) + 1} new on {TASK_QUEUE}/{SEND_TASK_QUEUE} version {BUILD_ID}, "
                f"{fake.fake.delivered_count} emails sent once each, "
                f"in {time.monotonic() - started:.0f}s"
            )
        finally:
            for proc in reversed(procs):
                if proc.popen is not None and proc.alive:
                    await proc.stop()
