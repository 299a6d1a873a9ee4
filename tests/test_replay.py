"""Recorded histories must replay against the code that runs them.

`tests/histories/*.json` (written by `temporal workflow show -o json` from the current code)
replay against today's workflow classes: a change that would break running executions fails
here. A released version's histories (`tests/histories/archive/<version>/`, never edited)
replay against that version's code from git (`make replay-archive VERSION=...`).
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

# Passed through: the sandbox re-imports this module to check ReorderedInvite, and
# infra.releases resolves paths at import (not workflow code).
with workflow.unsafe.imports_passed_through():
    from infra.releases import ARCHIVE, PREVIOUS_RELEASE, ReleaseNotFound, replay_archive
from workflows.registry import WORKFLOWS as ALL_WORKFLOWS
from workflows.types import InviteInput

# Top level only: the archive's folders hold other versions' histories.
HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))
WORKFLOWS = ALL_WORKFLOWS


def load(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(path.stem, json.loads(path.read_text()))


def workflow_type(path: Path) -> str:
    started = json.loads(path.read_text())["events"][0]["workflowExecutionStartedEventAttributes"]
    return str(started["workflowType"]["name"])


def test_histories_cover_every_workflow_type() -> None:
    recorded = {workflow_type(p) for p in HISTORIES}
    expected = {"SendEmail", "SendBatch", "SendInviteEmail", "SendInviteBatch", "Coalescer"}
    assert expected | {"Suppressions"} <= recorded


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_recorded_history_replays_with_current_code(path: Path) -> None:
    await Replayer(workflows=WORKFLOWS).replay_workflow(load(path))


@workflow.defn(name=InviteInput.WORKFLOW)
class ReorderedInvite:
    """A careless change: a new timer first, without `workflow.patched`."""

    @workflow.run
    async def run(self, data: InviteInput) -> None:
        await workflow.sleep(timedelta(seconds=1))
        raise AssertionError("unreachable in replay")


async def test_replay_catches_an_unpatched_change_to_the_command_sequence() -> None:
    invites = [p for p in HISTORIES if workflow_type(p) == InviteInput.WORKFLOW]
    if not invites:
        pytest.skip("no recorded SendInviteEmail history in tests/histories/ yet")
    with pytest.raises(NondeterminismError):
        await Replayer(workflows=[ReorderedInvite]).replay_workflow(load(invites[0]))


def test_previous_release_histories_replay_on_its_own_code_from_git() -> None:
    archived = sorted((ARCHIVE / PREVIOUS_RELEASE).glob("*.json"))
    assert archived, f"no archived histories for {PREVIOUS_RELEASE}"
    try:
        result = replay_archive(PREVIOUS_RELEASE)
    except ReleaseNotFound as err:
        pytest.fail(str(err))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    ok = [line for line in result.stdout.splitlines() if line.startswith("ok ")]
    assert len(ok) == len(archived), output[-4000:]
    assert f"{len(archived)} replayed, 0 failed" in result.stdout
