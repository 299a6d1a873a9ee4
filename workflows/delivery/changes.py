"""Changes of the delivery loop's commands after 1.0, and who must be asked about them.

From 1.0 every change of commands ships as a new Worker Deployment Version. A Pinned
workflow (`SendEmail`, `SendBatch`) runs on the version that started it, so a new version
only ever runs executions it started itself: it takes the new commands unconditionally. The
invite (`SendInviteEmail`) is Auto-Upgrade: an invite started by an older version moves to
the new one on its next task and replays its history there, so a new command inside an
invite must be behind `workflow.patched` (docs/upgrading.md). `Delivery` and `ProviderCall`
run in both; `changed` asks the one that must be asked.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.types import InviteInput


def changed(patch_id: str) -> bool:
    """Whether this execution runs the commands that came with `patch_id`: always in a
    Pinned workflow; in an auto-upgrading invite, `workflow.patched(patch_id)` (False for an
    invite whose history was made before the change)."""
    if workflow.info().workflow_type != InviteInput.WORKFLOW:
        return True
    return workflow.patched(patch_id)
