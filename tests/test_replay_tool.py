"""`make replay` / `python -m infra.replay`: every recorded history, and the failure mode."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from temporalio.client import Client

from config import Settings, get_settings
from infra.codec import new_codec_key
from infra.replay import load_file, replay, replay_from_server, replay_paths
from infra.temporal_client import data_converter
from testkit.keys import CODEC_KEYS
from tests.helpers import INVITE, wait_for_status
from workflows.send_email import SendEmail

# Histories recorded by the current code (the archive's are other versions': they replay on
# their own code, tests/test_replay.py).
HISTORIES = Path(__file__).parent / "histories"


@pytest.fixture
async def recorded(
    alone: None,
    api: httpx.AsyncClient,
    worker: None,
    client: Client,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Path:
    """A sent invite's history, recorded now by the current code, encrypted with the
    session's codec keys (which the in-process replayer reads from PAYLOAD_CODEC_KEYS);
    sent alone, so its send is an activity `broken_copy` can change."""
    folder = tmp_path / "recorded"
    folder.mkdir()
    path = await exported_history(api, client, folder)
    monkeypatch.setenv("PAYLOAD_CODEC_KEYS", CODEC_KEYS)
    get_settings.cache_clear()
    return path.rename(folder / "invite_sent.json")


async def test_every_recorded_history_replays(recorded: Path) -> None:
    outcomes = await replay_paths([HISTORIES, recorded])
    assert recorded.name in {Path(o.source).name for o in outcomes}
    assert [o.line() for o in outcomes if o.error] == []


async def test_each_history_is_named_by_its_workflow_id_not_its_file_name(
    recorded: Path,
) -> None:
    [outcome] = await replay_paths([recorded])
    started = json.loads(recorded.read_text())["events"][0][
        "workflowExecutionStartedEventAttributes"
    ]
    assert outcome.workflow_id == started["workflowId"]
    assert outcome.line() == f"ok      {started['workflowId']}  ({recorded})"


def broken_copy(recorded: Path, folder: Path) -> Path:
    """The recorded invite as if its send had been another activity: a nondeterministic change."""
    history = json.loads(recorded.read_text())
    for event in history["events"]:
        attributes = event.get("activityTaskScheduledEventAttributes")
        if attributes:
            attributes["activityType"]["name"] = "send_with_other_provider"
    path = folder / "invite_changed.json"
    path.write_text(json.dumps(history))
    return path


async def test_nondeterministic_change_is_reported_with_workflow_and_event(
    recorded: Path, tmp_path: Path
) -> None:
    path = broken_copy(recorded, tmp_path)
    [outcome] = await replay_paths([path])
    workflow_id = load_file(path).workflow_id
    assert outcome.error is not None
    assert outcome.event_id is not None
    assert outcome.line().startswith(
        f"FAILED  {workflow_id}  nondeterminism at event {outcome.event_id}: "
    )


async def run_cli(*args: str, cwd: Path | None = None) -> tuple[int, list[str]]:
    """`python -m infra.replay ARGS` as `make replay` runs it, without PAYLOAD_CODEC_KEYS."""
    env = {k: v for k, v in os.environ.items() if k != "PAYLOAD_CODEC_KEYS"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "infra.replay", *args,
        cwd=cwd, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode().splitlines()


async def test_cli_prints_one_line_per_history_before_any_detail(
    recorded: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "histories"
    folder.mkdir()
    broken = broken_copy(recorded, folder)
    (folder / "invite_sent.json").write_text(recorded.read_text())
    (tmp_path / ".dev").mkdir()
    (tmp_path / ".dev" / "codec_keys").write_text(CODEC_KEYS + "\n")
    code, lines = await run_cli(str(folder), cwd=tmp_path)
    assert code == 1
    summary = next(i for i, line in enumerate(lines) if line.endswith("replayed, 1 failed"))
    # The first line says which codec keys decrypt; then one line per history, then details.
    per_history = lines[1:summary]
    assert [line.split()[0] for line in per_history] == ["FAILED", "ok"], lines
    assert per_history[0].startswith(f"FAILED  {load_file(broken).workflow_id}  nondeterminism")
    assert any("Nondeterminism error" in line for line in lines[summary + 1 :])


async def exported_history(api: httpx.AsyncClient, client: Client, folder: Path) -> Path:
    """A sent invite's history, encrypted by the session's codec keys, as `temporal workflow
    show -o json` writes it, under a file name that is not its workflow id."""
    body = (await api.post("/v1/invites", json=INVITE)).json()
    await wait_for_status(api, body["invite_id"], "sent")
    history = await client.get_workflow_handle(body["workflow_id"]).fetch_history()
    path = folder / "exported.json"
    path.write_text(history.to_json())
    return path


async def test_make_dev_history_replays_with_only_dev_codec_keys(
    api: httpx.AsyncClient, worker: None, client: Client, tmp_path: Path
) -> None:
    path = await exported_history(api, client, tmp_path)
    started = json.loads(path.read_text())["events"][0]["workflowExecutionStartedEventAttributes"]
    # Encrypted: metadata encoding is base64 of "binary/encrypted".
    assert started["input"]["payloads"][0]["metadata"]["encoding"] == "YmluYXJ5L2VuY3J5cHRlZA=="
    (tmp_path / ".dev").mkdir()
    # As scripts/dev.py writes it: the keys on one line.
    (tmp_path / ".dev" / "codec_keys").write_text(CODEC_KEYS + "\n")

    code, lines = await run_cli(path.name, cwd=tmp_path)

    assert code == 0, lines
    assert lines[0] == "payload codec key ids test-2, test-1 (from .dev/codec_keys)"
    assert lines[1] == f"ok      {started['workflowId']}  (exported.json)"


async def test_encrypted_history_without_a_key_fails_in_one_line(
    api: httpx.AsyncClient, worker: None, client: Client, tmp_path: Path
) -> None:
    path = await exported_history(api, client, tmp_path)
    workflow_id = load_file(path).workflow_id

    code, lines = await run_cli(path.name, cwd=tmp_path)

    assert code == 1
    assert lines[1] == (
        f"FAILED  {workflow_id}  cannot decode: encrypted and no codec key is set "
        "(key id 'test-2', event 1)  (exported.json)"
    )
    assert not any("Traceback" in line for line in lines), lines


@pytest.mark.parametrize(
    ("keys", "problem"),
    [
        (new_codec_key("test-2"), "wrong codec key (key id 'test-2', event 1)"),
        (new_codec_key("dev-1"), "missing codec key (key id 'test-2', event 1)"),
    ],
)
async def test_encrypted_history_with_another_key_names_the_problem(
    api: httpx.AsyncClient, worker: None, client: Client, tmp_path: Path, keys: str, problem: str
) -> None:
    history = load_file(await exported_history(api, client, tmp_path))
    settings = Settings(_env_file=None, payload_codec_keys=SecretStr(keys))

    outcome = await replay(history, converter=data_converter(settings))

    assert outcome.line() == f"FAILED  {history.workflow_id}  cannot decode: {problem}"


async def test_history_fetched_from_the_server_replays(
    api: httpx.AsyncClient, worker: None, client: Client
) -> None:
    body = (await api.post("/v1/invites", json=INVITE)).json()
    await wait_for_status(api, body["invite_id"], "sent")
    outcome = await replay_from_server(client, body["workflow_id"])
    assert outcome.error is None, outcome.line()


async def test_history_of_an_unregistered_workflow_type_fails_with_its_error_type(
    recorded: Path,
) -> None:
    [outcome] = await replay_paths([recorded], workflows=[SendEmail])
    assert outcome.error == "workflow task failed: NotFoundError"
