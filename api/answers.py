"""Response models of the HTTP API: what each route answers."""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, BaseModel, Field

from activities.delivery_contract import SendKind
from workflows.status import InviteStatus, SendStatus


class BatchItemAccepted(BaseModel):
    id: str
    status_url: str


class BatchAccepted(BaseModel):
    """The batch's id and its items' ids, in request order."""

    id: str
    workflow_id: str
    status_url: str
    items: list[BatchItemAccepted]


class InviteAccepted(BaseModel):
    invite_id: str
    workflow_id: str
    # The invitation email's status (as for any send); `invite_url`: the invite's own.
    status_url: str
    invite_url: str


class EmailAccepted(BaseModel):
    id: str
    workflow_id: str
    status_url: str


class Attempt(BaseModel):
    attempt: int
    scheduled_at: str
    started_at: str | None
    finished_at: str
    outcome: str
    http_status: int | None
    error_type: str | None
    error_message: str | None
    provider_message_id: str | None
    retry_in_seconds: float | None
    # The provider this attempt reached (`resend`, `smtp`; None: unknown, e.g. a timeout);
    # set when the failover transport moved it: the provider it left, and why.
    provider: str | None = None
    failover_from: str | None = None
    failover_reason: str | None = None


class ErrorInfo(BaseModel):
    type: str
    message: str


class DeliveryEvent(BaseModel):
    event_id: str
    type: str
    received_at: str
    occurred_at: str | None
    detail: str | None


class EmailStatus(BaseModel):
    id: str
    kind: SendKind
    workflow_id: str
    status: SendStatus
    # False: no worker answered in time, so this is what Temporal itself knows (status,
    # ids, times), without attempts or events; ask again for the live state.
    live: bool = True
    attempt_count: int
    # `attempts` lists the first and the latest; this many in between are only counted.
    attempts_omitted: int = 0
    attempts: list[Attempt]
    last_error: ErrorInfo | None
    provider_message_id: str | None
    transport: str | None
    created_at: str
    updated_at: str
    sent_at: str | None
    send_at: str | None = None
    cancelled_at: str | None = None
    cancel_requested_at: str | None = None
    tenant_id: str | None = None
    first_attempt_at: str | None = None
    # No attempt is made after this moment (the provider deduplicates for 24 h after the first).
    not_after: str | None = None
    # True once an attempt's outcome is unknown: the provider may have accepted the email.
    provider_may_have_accepted: bool = False
    delivery_event_count: int = 0
    delivery_events_omitted: int = 0
    delivery_events: list[DeliveryEvent] = []
    # How many workflow runs the send has taken (it continues as new to bound its history).
    runs: int = 1
    # The provider that sent it; when it moved (failover), the provider it left and why.
    provider: str | None = None
    failover_from: str | None = None
    failover_reason: str | None = None
    # Providers that may have taken it in a failed attempt: later attempts go only to them.
    may_have_been_taken_by: list[str] = []
    # The coalesced provider call that carried it (None: its own call).
    call_id: str | None = None


class EmailSummary(BaseModel):
    """One send as the visibility store knows it (eventually consistent)."""

    id: str
    workflow_id: str
    kind: SendKind | None
    status: SendStatus | None
    tenant_id: str | None
    provider_message_id: str | None
    started_at: str | None
    closed_at: str | None


class EmailPage(BaseModel):
    items: list[EmailSummary]
    next_page_token: str | None


class TimelineEvent(BaseModel):
    """One step of a send's story, oldest first."""

    at: str | None
    type: Literal[
        "accepted",
        "scheduled",
        "attempt",
        "attempts_omitted",
        "sent",
        "delivery",
        "delivery_events_omitted",
        "failed",
        "undetermined",
        "cancel_requested",
        "cancelled",
    ]
    attempt: int | None = None
    outcome: str | None = None
    http_status: int | None = None
    error_type: str | None = None
    detail: str | None = None
    event_type: str | None = None
    event_id: str | None = None
    provider_message_id: str | None = None
    provider: str | None = None
    failover_from: str | None = None
    failover_reason: str | None = None


class EmailTimeline(BaseModel):
    id: str
    workflow_id: str
    status: SendStatus
    events: list[TimelineEvent]


class BatchItemStatus(BaseModel):
    id: str
    status: SendStatus
    provider_message_id: str | None
    error: ErrorInfo | None
    status_url: str


class BatchStatus(BaseModel):
    """A batch: its provider call (status, attempts) and where each item stands."""

    id: str
    workflow_id: str
    # False: no worker answered in time, so this is what Temporal itself knows (status,
    # items, times), without attempts; ask again for the live state.
    live: bool = True
    kind: SendKind
    status: SendStatus
    created_at: str
    updated_at: str
    sent_at: str | None
    tenant_id: str | None
    transport: str | None
    total: int
    counts: dict[str, int]
    attempt_count: int
    # `attempts` lists the first and the latest; this many in between are only counted.
    attempts_omitted: int = 0
    attempts: list[Attempt]
    last_error: ErrorInfo | None
    # No attempt is made after this moment (the send window after the accept).
    not_after: str | None = None
    # True once an attempt's outcome is unknown: the provider may have accepted the call.
    provider_may_have_accepted: bool = False
    runs: int = 1
    items: list[BatchItemStatus]


class CancelAccepted(BaseModel):
    id: str
    # `cancelled` when applied (200); else (202) the status Temporal knows now.
    status: SendStatus
    # Set when the cancel was only requested (202): what happens next.
    detail: str | None = None


class WebhookAck(BaseModel):
    status: str


class Problem(BaseModel):
    """Error body of every 4xx/5xx answer."""

    detail: str


class RenderedMessage(BaseModel):
    """An email as rendered (read from an `EmailMessage`'s attributes)."""

    sender: str = Field(serialization_alias="from")
    to: list[str]
    subject: str
    html: str | None
    text: str | None


class InvitePreview(BaseModel):
    """What would be sent, byte for byte, except the token of an invite with our link."""

    invite_id: str
    locale: str
    link: Literal["managed", "app"]
    invitation: RenderedMessage
    reminder: RenderedMessage | None
    # Where the send puts our token (managed link); absent for the app's own link.
    token_placeholder: str | None


class InviteEmail(BaseModel):
    """One of an invite's emails as the delivery loop sees it."""

    status: SendStatus
    attempt_count: int
    sent_at: str | None
    provider_message_id: str | None
    last_error: ErrorInfo | None
    updated_at: str
    delivery_events: list[DeliveryEvent] = []


class InviteView(BaseModel):
    invite_id: str
    status: InviteStatus
    # False: no worker answered in time, so this is what Temporal itself knows (the invite's
    # input and times), without its emails' progress; ask again for the live state.
    live: bool = True
    email: str
    tenant_id: str | None
    role: str | None
    locale: str
    link: Literal["managed", "app"]
    created_at: str
    expires_at: str
    remind_at: str | None
    accepted_at: str | None
    revoked_at: str | None
    expired_at: str | None
    wrong_tokens: int
    invitation: InviteEmail | None
    reminder: InviteEmail | None
    reminder_skipped: str | None


class InviteRevoked(InviteView):
    # The invitation (or reminder) was cancelled before it went out.
    email_cancelled: bool


class InviteAcceptance(BaseModel):
    """An accepted invite, read from the invite's state (its `to` is the `email`)."""

    invite_id: str
    status: InviteStatus
    email: str = Field(validation_alias=AliasChoices("email", "to"))
    tenant_id: str | None
    role: str | None
    accepted_at: str | None


ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": Problem} for code in (400, 401, 403, 404, 409, 413, 429, 503)
}
INVITE_ERRORS: dict[int | str, dict[str, object]] = {
    **ERRORS,
    410: {"model": Problem, "description": "The invite expired or was revoked"},
}
