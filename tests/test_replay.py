"""Recorded histories (tests/histories/*.json, written by `temporal workflow show -o json`)
must replay against today's workflow code: a change that would break running sends fails here.
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

from workflows.invite import Invite
from workflows.send_batch import SendBatch
from workflows.send_email import SendEmail
from workflows.send_invite_email import SendInviteEmail
from workflows.types import EmailStatusResult, SendInviteEmailInput

HISTORIES = sorted((Path(__file__).parent / "histories" / "archive" / "0.1.0").glob("*.json"))


def load(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(path.stem, json.loads(path.read_text()))


def test_histories_cover_every_workflow_type() -> None:
    types = {
        json.loads(p.read_text())["events"][0]["workflowExecutionStartedEventAttributes"][
            "workflowType"
        ]["name"]
        for p in HISTORIES
    }
    assert {"SendInviteEmail", "SendEmail", "SendBatch", "Invite"} <= types


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_recorded_history_replays_with_current_code(path: Path) -> None:
    replayer = Replayer(workflows=[Invite, SendInviteEmail, SendEmail, SendBatch])
    await replayer.replay_workflow(load(path))


@workflow.defn(name="SendInviteEmail")
class ReorderedSendInviteEmail:
    """A careless change: a new timer before the send, without `workflow.patched`."""

    @workflow.run
    async def run(self, data: SendInviteEmailInput) -> EmailStatusResult:
        await workflow.sleep(timedelta(seconds=1))
        raise AssertionError("unreachable in replay")


async def test_replay_catches_an_unpatched_change_to_the_command_sequence() -> None:
    history = load(next(p for p in HISTORIES if p.stem == "invite_sent"))
    with pytest.raises(NondeterminismError):
        await Replayer(workflows=[ReorderedSendInviteEmail]).replay_workflow(history)
