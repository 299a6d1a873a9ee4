"""Wire types of the `Coalescer` workflow and of what it tells each email. Fields are only
ever added at the end, with defaults."""

from dataclasses import dataclass, field
from typing import ClassVar

from activities.coalesce_types import COALESCER_WORKFLOW, CoalesceRef
from workflows.policy import DeliveryPolicy
from workflows.status import SendStatus
from workflows.types import AttemptRecord, EmailError


@dataclass
class HeldCall:
    """A call a coalescer composed: its emails stay its own until `until` (the latest of
    their windows, and the outcome grace), even for a reset run of one of them."""

    call_id: str
    until: str
    email_ids: list[str] = field(default_factory=list)


@dataclass
class CoalescerInput:
    """One shard's coalescer: what its calls may carry (the transport's capabilities, set
    by the enqueue activity), its calls' policy, and what a continued run carries: the refs
    still waiting (small references, at most `MAX_PENDING`), how many calls it made, and the
    calls whose emails it still holds (`HeldCall`, ids only)."""

    WORKFLOW: ClassVar[str] = COALESCER_WORKFLOW
    shard_id: str
    policy: DeliveryPolicy = field(default_factory=DeliveryPolicy)
    max_batch: int = 100
    max_bytes: int = 40 * 1024 * 1024
    pending: list[CoalesceRef] = field(default_factory=list)
    calls_made: int = 0
    emails_sent: int = 0
    held: list[HeldCall] = field(default_factory=list)
    # Each call attempt's heartbeat timeout (seconds; 0: none), set when the transport
    # deduplicates a retry by key; the attempt beats four times per timeout, so a killed
    # worker's call is retried in seconds, not after the attempt's whole timeout (see
    # `activities.coalesce.CALL_HEARTBEAT_SECONDS`).
    heartbeat_seconds: float = 0


@dataclass
class CallOutcome:
    """Signal `call_outcome` to one email: how the call that claimed it ended for it.

    `status` sent (with its provider id), failed (refused alone, or the call provably not
    taken) or undetermined (the call's outcome is unknown). `attempts`: the call's."""

    call_id: str
    status: SendStatus
    provider_message_id: str | None = None
    error: EmailError | None = None
    attempts: list[AttemptRecord] = field(default_factory=list)
    attempt_count: int = 0
    http_status: int = 0
    transport: str | None = None
    started_at: str | None = None
    reports_delivery_events: bool = True
    # The email told (its id), and whether it came back while (or after) its call was made:
    # a reset run of it, which knows no call, takes this outcome as its own.
    email_id: str = ""
    rejoined: bool = False
    # The providers the call's attempts may have reached (the email's own list gets them).
    may_have_been_taken_by: list[str] = field(default_factory=list)


@dataclass
class CallState:
    """Where one composed call stands (what the loop reads and writes)."""

    status: SendStatus = SendStatus.QUEUED
    attempts: list[AttemptRecord] = field(default_factory=list)
    attempt_count: int = 0
    attempts_omitted: int = 0
    not_after: str | None = None
    provider_may_have_accepted: bool = False
    last_error: EmailError | None = None
    may_have_been_taken_by: list[str] = field(default_factory=list)
