"""Wire types of a batch send (`SendBatch`): its input, its status, and one item's status.

Fields are only ever added at the end, with defaults: recorded histories must still decode.
A batch's items share its provider calls, so the attempts are recorded once, on the batch;
`item_status` gives one item the shape of a single send's status (`EmailStatusResult`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import ClassVar

from activities.delivery_contract import SendKind
from activities.errors import REJECTED
from activities.types import EmailMessage, RenderInviteInput
from workflows.status import SendStatus
from workflows.types import (
    AttemptRecord,
    DeliveryEventRecord,
    DeliveryPolicy,
    EmailError,
    EmailStatusResult,
    SeenEvents,
)

BATCH_STATUS_QUERY = "batch_status"


@dataclass
class BatchItemInput:
    """One item: its public id, and the email as composed (emails) or the invitation to
    render once (invites)."""

    email_id: str
    message: EmailMessage | None = None
    invite: RenderInviteInput | None = None


@dataclass
class BatchItemState:
    """Where one item stands; refused by the provider -> `failed` with its `error`."""

    id: str
    status: SendStatus
    updated_at: str
    provider_message_id: str | None = None
    sent_at: str | None = None
    error: EmailError | None = None
    delivery_events: list[DeliveryEventRecord] = field(default_factory=list)


@dataclass
class BatchStatusResult:
    """The answer of the `batch_status` query and the batch workflow's result.

    `status` is the provider call's: queued, sending, retrying, then sent (the provider took
    the call; each item says whether its email was accepted) or failed (no item was sent).
    """

    id: str
    kind: SendKind
    status: SendStatus
    created_at: str
    updated_at: str
    items: list[BatchItemState] = field(default_factory=list)
    attempts: list[AttemptRecord] = field(default_factory=list)
    transport: str | None = None
    sent_at: str | None = None
    last_error: EmailError | None = None
    tenant_id: str | None = None
    # Since `batch-bounded-v1`: every attempt counts here, `attempts` keeps the first few
    # and the latest; the last moment the provider may be called (the window after the
    # accept); and whether an attempt's outcome was unknown (then the batch never ends
    # `failed`: it ends `undetermined`, as a single send does).
    attempt_count: int = 0
    attempts_omitted: int = 0
    not_after: str | None = None
    provider_may_have_accepted: bool = False
    runs: int = 1


@dataclass
class BatchCarry:
    """What one run of a batch hands the next when it continues as new: the status so far,
    where the loop stands and which delivery events were counted. `messages`: the rendered
    invitations (never rendered twice); empty for an email batch, whose input holds its
    messages (carried once: a run's input must fit Temporal's payload limit)."""

    state: BatchStatusResult
    messages: list[EmailMessage]
    attempt: int
    backoff_seconds: float
    deadline: str
    # Set once the provider took the call: the next run only waits for delivery events,
    # until this moment (ISO 8601).
    tracking_until: str | None = None
    seen: SeenEvents | None = None


@dataclass
class SendBatchInput:
    """Workflow `SendBatch`: 1 to 100 items of one kind, sent in one provider call."""

    WORKFLOW: ClassVar[str] = "SendBatch"
    batch_id: str
    kind: SendKind
    items: list[BatchItemInput]
    tenant_id: str | None = None
    policy: DeliveryPolicy = field(default_factory=DeliveryPolicy)
    carry: BatchCarry | None = None
    # When the API accepted the batch (ISO 8601): the send window counts from it, and a
    # reset of the workflow keeps it (the input is the start event's).
    accepted_at: str | None = None


# What each item of a batch shares with the batch (the call, its window, its tenant).
SHARED_WITH_ITEMS = (
    "kind",
    "created_at",
    "transport",
    "tenant_id",
    "attempts_omitted",
    "not_after",
    "provider_may_have_accepted",
    "runs",
)


def item_status(batch: BatchStatusResult, index: int) -> EmailStatusResult:
    """One item as a single send's status: the batch's attempts, the last one as this
    item saw it (its provider id, or the provider's refusal of it)."""
    item = batch.items[index]
    attempts = [replace(attempt) for attempt in batch.attempts]
    last = attempts[-1] if attempts else None
    if last is not None and last.outcome == "accepted":
        if item.provider_message_id is None and item.error is not None:
            last.outcome = "permanent_error"
            last.error_type = item.error.type
            last.error_message = item.error.message
        else:
            last.provider_message_id = item.provider_message_id
    return EmailStatusResult(
        id=item.id,
        status=item.status,
        updated_at=item.updated_at,
        attempts=attempts,
        provider_message_id=item.provider_message_id,
        sent_at=item.sent_at,
        last_error=item.error,
        delivery_events=item.delivery_events,
        attempt_count=max(batch.attempt_count, len(batch.attempts)),
        **{name: getattr(batch, name) for name in SHARED_WITH_ITEMS},
    )


def refusal(message: str) -> EmailError:
    """The error of an item the provider refused in a call it otherwise took."""
    return EmailError(REJECTED, message)
