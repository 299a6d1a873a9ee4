"""The contract between a single send, its coalescer and the call activity (names, wire types).

A due single send that a provider batch call can carry is handed to a `Coalescer` workflow
by reference (`CoalesceRef`: ids, the message's digest and size, never the message). The
coalescer composes calls of refs; the call activity claims each email from its own
workflow (`CLAIM_UPDATE`, answered with the pinned message) before the provider call: an
email claimed by a call can no longer be cancelled, and one claimed by another call (or
cancelled, or already told its outcome) is left out. Fields are only ever added at the end.
"""

from dataclasses import dataclass, field
from typing import Any, Final

from activities.types import BatchAttemptResult, BatchItemOutcome, EmailMessage

COALESCER_WORKFLOW: Final = "Coalescer"
ENQUEUE_SIGNAL: Final = "coalesce_enqueue"
CLAIM_UPDATE: Final = "claim_for_call"
CALL_OUTCOME_SIGNAL: Final = "call_outcome"
CALL_STATE_QUERY: Final = "call_state"


def coalescer_of(call_id: str) -> str:
    """The workflow id of the coalescer that composed `call_id` (`<coalescer id>/<n>-<x>`)."""
    return call_id.rsplit("/", 1)[0]


# What a claim answers.
CLAIMED: Final = "claimed"
WITHDRAWN: Final = "withdrawn"  # cancelled, told already, gone, or another message
HELD: Final = "held_by_other_call"


def coalescer_id(queue: str, shard: int) -> str:
    """The coalescer of one shard of a send queue (a business key: no address in it)."""
    return f"coalescer:{queue}:{shard}"


def call_idempotency_key(call_id: str) -> str:
    """One key per composed call, the same on every attempt (derived from the call id)."""
    return f"coalesced/{call_id}"


@dataclass
class CoalesceRef:
    """One due email waiting for a call, by reference."""

    email_id: str
    workflow_id: str
    digest: str
    size: int
    not_after: str
    priority_key: int = 3
    fairness_key: str = ""


@dataclass
class EnqueueInput:
    """Local activity `coalesce_enqueue`: hand one due email to its shard's coalescer.

    `start`: the coalescer's input if it is not running (its JSON form: activities do not
    import workflow types); `message` is not recorded (a local activity's input is not)."""

    email_id: str
    workflow_id: str
    message: EmailMessage
    not_after: str
    task_queue: str
    send_task_queue: str
    shards: int
    start: dict[str, Any]
    priority_key: int = 3
    fairness_key: str = ""


@dataclass
class EnqueueResult:
    """`enqueued` False: the transport cannot carry it in a batch call; it goes alone."""

    enqueued: bool
    coalescer_id: str | None = None


@dataclass
class ClaimInput:
    call_id: str
    digest: str


@dataclass
class ClaimResult:
    outcome: str
    message: EmailMessage | None = None
    held_by: str | None = None
    # With `WITHDRAWN`: this call never had this email and never will (its run answers
    # every claim of the call alike, and no earlier run of it was reset away), so the
    # coalescer may compose it again when it comes back.
    never: bool = False


@dataclass
class CoalescedAttemptInput:
    """Activity `deliver_coalesced_call`: one attempt of one composed call. The composition
    (`refs`, in order) and the key are recorded here, before the call, and never change."""

    call_id: str
    idempotency_key: str
    refs: list[CoalesceRef]
    attempt: int
    not_after: str
    # Providers the call's earlier attempts may have reached: with none, a call the provider
    # cannot take hands its emails back to fail over alone (`errors.SEND_ALONE`).
    may_have_been_taken_by: list[str] = field(default_factory=list)


@dataclass
class CoalescedItem:
    """One ref's part in an attempt: its claim, and the provider's answer if it was sent."""

    email_id: str
    claim: str
    held_by: str | None = None
    outcome: BatchItemOutcome | None = None
    never: bool = False  # `ClaimResult.never`


@dataclass
class CoalescedAttemptResult:
    """Each ref's claim (and answer), and the provider call's result (None: no email could
    be claimed, so the provider was not called)."""

    items: list[CoalescedItem]
    call: BatchAttemptResult | None = None
