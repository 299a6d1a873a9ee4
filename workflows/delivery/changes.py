"""Changes of the delivery loop's commands after 1.0, and who must be asked about them.

From 1.0 every change of commands ships as a new Worker Deployment Version. A Pinned
workflow (`SendEmail`, `SendBatch`) runs on the version that started it, so a new version
only ever runs executions it started itself: it takes the new commands unconditionally. The
invite (`SendInviteEmail`) and the invite batch (`SendInviteBatch`) are Auto-Upgrade: one
started by an older version moves to the new one on its next task and replays its history
there, so a new command inside one must be behind `workflow.patched` (docs/upgrading.md).
`Delivery` and `ProviderCall` run in all of them; `changed` asks the one that must be asked.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.invite_batch_types import InviteBatchInput
    from workflows.types import InviteInput

# An invite started after this change answers the patches below from one marker recorded in
# its first workflow task (`settle_at_start`), never at their call sites. A call site right
# after a local activity is not stable: when a query reaches an invite during its first
# task, the server has the task completed at once; a local activity that finished just then
# has its marker in that task while the code after it runs in the next, and a replay runs
# that code one task earlier, where the next task's patch markers are not known yet:
# `patched` answered False, then "Non-deprecated patch marker encountered" (6 of 20 invites
# polled from their start failed to replay, `tests/test_invite_replay_race.py`). A patch
# added later is not in this set: call it at a site that does not follow a local
# activity, or settle it at the start under a new marker.
SETTLED_AT_START = "invite-patches-settled-at-start"

# The patches after 1.0, each asked where its commands are:
# the suppression check before the first attempt (`workflows.delivery.loop`);
SUPPRESSION_CHECK = "suppression-check"
# a bounce or complaint adds the recipients to the tenant's list (`.suppression`);
SUPPRESSION_ADD = "suppression-auto-add"
# app events handed over (`workflows.app_events.emit`; an invite started before them hands
# over none);
APP_EVENTS_PATCH = "app-events-v1"
# after 1.2.0, a claim refused is refused on every attempt of the call
# (`workflows.coalesce.handoff`; an invite made before answered each attempt afresh).
REFUSALS_FINAL = "coalesce-claim-refusals-final"
SETTLED = frozenset({SUPPRESSION_CHECK, SUPPRESSION_ADD, APP_EVENTS_PATCH, REFUSALS_FINAL})
# Not settled (asked in the claim's update handler, which follows no local activity, and
# only when a claim finds no message): a claim that reaches an email before this run has
# its message is refused for good, as one that reaches it not yet waiting
# (`workflows.coalesce.handlers`; an invite made before answered "withdrawn" alone).
CLAIM_BEFORE_MESSAGE = "coalesce-claim-before-message"


class SettlesPatches:
    """Mixin of a workflow whose first task settles the `SETTLED` patches."""

    patches_settled = False

    def settle_at_start(self) -> None:
        """Call first, in `@workflow.init`: True for a run started by this code (or
        continued as new by any), False for one that started before (it asks each patch
        where it always did)."""
        self.patches_settled = workflow.patched(SETTLED_AT_START)


def changed(patch_id: str) -> bool:
    """Whether this execution runs the commands that came with `patch_id`: always in a
    Pinned workflow; in an auto-upgrading invite, yes if it settled the patch at its start,
    else `workflow.patched(patch_id)` (False for an invite whose history was made before
    the change); in an invite batch, yes for a settled patch, else `workflow.patched`
    (it used to answer yes to any patch, as if the batch were Pinned)."""
    kind = workflow.info().workflow_type
    if kind == InviteBatchInput.WORKFLOW:
        # Auto-Upgrade too, and newer than every settled patch: each of its runs has them;
        # a later patch is asked.
        return patch_id in SETTLED or workflow.patched(patch_id)
    if kind != InviteInput.WORKFLOW:
        return True
    if patch_id in SETTLED and getattr(workflow.instance(), "patches_settled", False):
        return True
    return workflow.patched(patch_id)
