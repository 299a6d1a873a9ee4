"""Replay workflow histories against today's workflow code (`make replay`).

    python -m infra.replay tests/histories        # every *.json in a folder
    python -m infra.replay history.json           # one `temporal workflow show -o json`
    python -m infra.replay invite-<hex>           # fetched from the server (TEMPORAL_*)

Exits 1 if any history does not replay, naming the workflow and the event where the new
code diverged: the change would break the sends in flight (use `workflow.patched`).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from temporalio.client import Client, WorkflowHistory
from temporalio.converter import DataConverter
from temporalio.worker import Replayer

from config import get_settings
from infra.temporal_client import connect, data_converter
from workflows.send_email import SendEmail
from workflows.send_invite_email import SendInviteEmail

WORKFLOWS: list[type] = [SendInviteEmail, SendEmail]
_EVENT = re.compile(r"(?:HistoryEvent\(id: |event[ _]id[:= ]+)(\d+)")
_CORE_MESSAGE = re.compile(r'message: "([^"]*Nondeterminism[^"]*)"')
_QUOTED = re.compile(r"'([^']+)'")


@dataclass
class ReplayOutcome:
    workflow_id: str
    error: str | None = None
    event_id: int | None = None

    def line(self) -> str:
        if self.error is None:
            return f"ok      {self.workflow_id}"
        where = f" at event {self.event_id}" if self.event_id is not None else ""
        return f"FAILED  {self.workflow_id}{where}: {self.error}"


async def replay(
    history: WorkflowHistory,
    workflows: Sequence[type] = WORKFLOWS,
    converter: DataConverter | None = None,
) -> ReplayOutcome:
    # By default, this deployment's codec (PAYLOAD_CODEC_KEYS) decrypts encrypted histories.
    converter = converter or data_converter(get_settings())
    result = await Replayer(workflows=workflows, data_converter=converter).replay_workflow(
        history, raise_on_replay_failure=False
    )
    if result.replay_failure is None:
        return ReplayOutcome(history.workflow_id)
    message = str(result.replay_failure)
    core = _CORE_MESSAGE.search(message)
    summary = core[1] if core else message.splitlines()[0]
    return ReplayOutcome(history.workflow_id, summary[:500], _event_of(history, summary))


def _event_of(history: WorkflowHistory, message: str) -> int | None:
    """The history event the message is about: by id, else the first naming what it quotes."""
    found = _EVENT.search(message)
    if found:
        return int(found[1])
    for name in _QUOTED.findall(message):
        for event in history.events:
            if f'"{name}"' in str(event):
                return int(event.event_id)
    return None


def load_file(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(path.stem, json.loads(path.read_text()))


async def replay_paths(
    paths: Sequence[Path], workflows: Sequence[type] = WORKFLOWS
) -> list[ReplayOutcome]:
    """Replay JSON histories; a folder means every `*.json` in it."""
    files: list[Path] = []
    for path in paths:
        files.extend(sorted(path.glob("*.json")) if path.is_dir() else [path])
    return [await replay(load_file(f), workflows) for f in files]


async def replay_from_server(client: Client, workflow_id: str) -> ReplayOutcome:
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    return await replay(history, converter=client.data_converter)


async def run(targets: Sequence[str]) -> int:
    paths = [Path(t) for t in targets if Path(t).exists()]
    outcomes = await replay_paths(paths) if paths else []
    ids = [t for t in targets if not Path(t).exists()]
    if ids:
        client = await connect(get_settings())
        outcomes += [await replay_from_server(client, i) for i in ids]
    for outcome in outcomes:
        sys.stdout.write(outcome.line() + "\n")
    failed = sum(o.error is not None for o in outcomes)
    sys.stdout.write(f"{len(outcomes) - failed} replayed, {failed} failed\n")
    return 1 if failed or not outcomes else 0


def main() -> None:
    targets = sys.argv[1:] or ["tests/histories"]
    code = asyncio.run(run(targets))
    sys.stdout.flush()
    # The SDK's runtime can crash the interpreter at exit (sdk-python#300).
    os._exit(code)


if __name__ == "__main__":
    main()
