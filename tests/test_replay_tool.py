"""`make replay` / `python -m infra.replay`: every recorded history, and the failure mode."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import httpx
from temporalio.client import Client

from infra.replay import replay_from_server, replay_paths
from tests.helpers import INVITE, wait_for_status

HISTORIES = Path(__file__).parent / "histories"
SCENARIOS = (
    "invite_sent",
    "invite_retried_500_429",
    "invite_failed_422",
    "email_sent",
    "invite_delivered",
    "invite_retried_then_delivered",
    "invite_bounced",
    "invite_event_before_send",
    "invite_scheduled",
    "invite_cancelled",
)


async def test_every_recorded_history_replays() -> None:
    outcomes = await replay_paths([HISTORIES])
    assert {o.workflow_id for o in outcomes} >= set(SCENARIOS)
    assert [o.line() for o in outcomes if o.error] == []


def broken_copy(tmp_path: Path) -> Path:
    """invite_sent as if its send had been another activity: a nondeterministic change."""
    history = json.loads((HISTORIES / "invite_sent_tracked.json").read_text())
    for event in history["events"]:
        attributes = event.get("activityTaskScheduledEventAttributes")
        if attributes:
            attributes["activityType"]["name"] = "send_with_other_provider"
    path = tmp_path / "invite_changed.json"
    path.write_text(json.dumps(history))
    return path


async def test_nondeterministic_change_is_reported_with_workflow_and_event(
    tmp_path: Path,
) -> None:
    [outcome] = await replay_paths([broken_copy(tmp_path)])
    assert outcome.error is not None
    assert outcome.event_id is not None
    assert outcome.line().startswith(f"FAILED  invite_changed at event {outcome.event_id}")


async def test_cli_exits_non_zero_on_a_nondeterministic_history(tmp_path: Path) -> None:
    broken_copy(tmp_path)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "infra.replay", str(tmp_path), stdout=asyncio.subprocess.PIPE
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 1
    assert "FAILED  invite_changed" in out.decode()


async def test_history_fetched_from_the_server_replays(
    api: httpx.AsyncClient, worker: None, client: Client
) -> None:
    body = (await api.post("/v1/invites", json=INVITE)).json()
    await wait_for_status(api, body["invite_id"], "sent")
    outcome = await replay_from_server(client, body["workflow_id"])
    assert outcome.error is None, outcome.line()
