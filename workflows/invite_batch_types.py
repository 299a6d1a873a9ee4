"""Wire types of a batch of invites (`SendInviteBatch`): its input, what a run carries into
the next, its result.

The input is a batch's (`SendBatchInput`: the items, the tenant, the policy, the
invitations' call carry) plus what an invite's life needs: expiry and reminder, locale and
brand, and per item the token's reference and keyed digest (never the token). Reads that
know a batch (`GET /v1/batches/{id}`, `GET /v1/emails/{item id}`, the recorded input)
read this one the same way. Fields are only ever added at the end, with defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import ClassVar

from activities.types import Brand, InviteToken
from workflows.batch_types import BatchCarry, BatchStatusResult, SendBatchInput
from workflows.types import InviteState

INVITE_ITEM_QUERY = "invite_item"
# The invitations' provider call and the reminders' (their idempotency keys).
INVITATIONS_CALL, REMINDERS_CALL = 0, 1


@dataclass
class InviteBatchLife:
    """What a run of the batch hands the next (bounded history): each invite's state, and
    the reminders' call (the items it carries, its carry), started or not."""

    invites: list[InviteState]
    invitations_done: bool = False
    reminder_started: bool = False
    reminder_items: list[int] = field(default_factory=list)
    reminders: BatchCarry | None = None
    reminders_done: bool = False


@dataclass
class InviteBatchInput(SendBatchInput):
    """Workflow `SendInviteBatch`: 1 to 100 invites sent in one provider call, each then
    living as a single invite does (accept with its token, revoke, expiry, a reminder)."""

    WORKFLOW: ClassVar[str] = "SendInviteBatch"
    locale: str = "en"
    brand: Brand = field(default_factory=Brand)
    expires_in_seconds: float = 7 * 86400.0
    remind_after_seconds: float | None = None
    # Per item, in order: where its token is derived from, and the token's keyed digest.
    tokens: list[InviteToken] = field(default_factory=list)
    token_digests: list[str] = field(default_factory=list)
    life: InviteBatchLife | None = None


@dataclass
class InviteBatchResult(BatchStatusResult):
    """The batch's result: its invitations' call (what a batch's readers decode, the extra
    field ignored) and each invite as it ended."""

    invites: list[InviteState] = field(default_factory=list)


def batch_result(state: BatchStatusResult, invites: list[InviteState]) -> InviteBatchResult:
    """The result of a batch whose invitations' call stands at `state`."""
    shared = {f.name: getattr(state, f.name) for f in fields(BatchStatusResult)}
    return InviteBatchResult(**shared, invites=invites)
