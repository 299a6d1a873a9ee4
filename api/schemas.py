"""Request and response models of the HTTP API (pydantic stays at this edge)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from email_validator import EmailNotValidError, validate_email
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    EmailStr,
    Field,
    model_validator,
)

from activities.delivery_contract import MAX_BATCH_EMAILS, RESERVED_TAG_NAMES, SendKind
from workflows.status import SendStatus

# Resend's own cap on recipients per email.
MAX_RECIPIENTS = 50
MAX_BODY_CHARS = 256_000
# html + text together, in UTF-8. The message travels in the workflow input and in every
# send attempt's activity input, so it stays far below Temporal's 2 MB payload limit (and
# a long retry series far below the history size limit). Gmail clips HTML past ~100 KB.
MAX_CONTENT_BYTES = 128 * 1024


def _no_line_breaks(value: Any) -> Any:
    # Checked before whitespace stripping: CR or LF anywhere in a header value is refused,
    # even trailing, so header injection never depends on what a later step strips.
    if isinstance(value, str) and ("\r" in value or "\n" in value):
        raise ValueError("must not contain CR or LF (header injection)")
    return value


MAX_SCHEDULE_AHEAD = timedelta(days=30)


def _single_line(value: str) -> str:
    if any(ord(ch) < 32 and ch != "\t" or ord(ch) == 127 for ch in value):
        raise ValueError("must be a single line without control characters")
    return value


def _sender(value: str) -> str:
    _single_line(value)
    match = _SENDER.fullmatch(value)
    if match is None:
        raise ValueError('must be one address or "Name <address@domain>"')
    address = match["address"] or match["bare"]
    try:
        validate_email(address, check_deliverability=False)
    except EmailNotValidError as err:
        raise ValueError(f"invalid sender address: {err}") from None
    return value


# `address` or `Display Name <address>`: one address, no quoting, no lists.
_SENDER = re.compile(r"[^<>\"@,;]*<(?P<address>[^<>\s,;]+)>|(?P<bare>[^<>\s,;\"]+)")
NoLineBreaks = BeforeValidator(_no_line_breaks)


def _send_at(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("must include a timezone, e.g. 2030-01-01T09:00:00Z")
    now = datetime.now(UTC)
    if value <= now:
        raise ValueError("must be in the future")
    if value > now + MAX_SCHEDULE_AHEAD:
        raise ValueError("must be at most 30 days ahead")
    return value.astimezone(UTC)


SingleLine = Annotated[str, NoLineBreaks, AfterValidator(_single_line)]
Name = Annotated[SingleLine, Field(min_length=1, max_length=200)]
Sender = Annotated[str, NoLineBreaks, Field(max_length=320), AfterValidator(_sender)]
Address = Annotated[EmailStr, NoLineBreaks]
Recipients = Address | Annotated[list[Address], Field(min_length=1, max_length=MAX_RECIPIENTS)]
TenantId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
SendAt = Annotated[
    datetime,
    AfterValidator(_send_at),
    Field(description="Send later (ISO 8601 with timezone, up to 30 days ahead)."),
]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class InviteCreate(StrictModel):
    """An invitation to a tenant; the accept link is built by the service."""

    email: Address
    tenant_name: Name
    inviter_name: Name
    role: Annotated[SingleLine, Field(min_length=1, max_length=100)] | None = None
    tenant_id: TenantId | None = None
    send_at: SendAt | None = None


TagText = Annotated[
    str, NoLineBreaks, Field(min_length=1, max_length=256, pattern=r"^[A-Za-z0-9_-]+$")
]


class Tag(StrictModel):
    name: TagText
    value: TagText


class EmailCreate(StrictModel):
    """A caller-composed email."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, populate_by_name=True)

    to: Recipients
    subject: Annotated[SingleLine, Field(min_length=1, max_length=998)]
    html: Annotated[str, Field(min_length=1, max_length=MAX_BODY_CHARS)] | None = None
    text: Annotated[str, Field(min_length=1, max_length=MAX_BODY_CHARS)] | None = None
    sender: Sender | None = Field(default=None, alias="from")
    reply_to: Recipients | None = None
    tags: Annotated[list[Tag], Field(max_length=10)] | None = None
    tenant_id: TenantId | None = None
    send_at: SendAt | None = None

    @model_validator(mode="after")
    def _has_body(self) -> EmailCreate:
        if self.html is None and self.text is None:
            raise ValueError("give html, text or both")
        size = sum(len(part.encode()) for part in (self.html, self.text) if part is not None)
        if size > MAX_CONTENT_BYTES:
            raise ValueError(f"html and text together must be at most {MAX_CONTENT_BYTES} bytes")
        if self.tags and any(t.name in RESERVED_TAG_NAMES for t in self.tags):
            raise ValueError("tag names 'kind' and 'email_id' are reserved")
        return self


NO_SCHEDULING_IN_BATCH = (
    "send_at is not supported in a batch (the batch goes out in one provider call at once): "
    "schedule it with a single POST"
)


def _one_tenant(tenant_ids: list[str | None], field: str) -> None:
    for index, tenant_id in enumerate(tenant_ids):
        if tenant_id != tenant_ids[0]:
            raise ValueError(
                f"{field}[{index}]: tenant_id differs from {field}[0]'s; a batch "
                "belongs to one tenant"
            )


class BatchInvite(InviteCreate):
    """An invitation of a batch: as `POST /v1/invites` takes it, without `send_at`."""

    @model_validator(mode="after")
    def _not_scheduled(self) -> BatchInvite:
        if self.send_at is not None:
            raise ValueError(NO_SCHEDULING_IN_BATCH)
        return self


class BatchEmail(EmailCreate):
    """An email of a batch: as `POST /v1/emails` takes it, without `send_at` (and, like
    every email here, without attachments, which Resend's batch endpoint refuses)."""

    @model_validator(mode="after")
    def _not_scheduled(self) -> BatchEmail:
        if self.send_at is not None:
            raise ValueError(NO_SCHEDULING_IN_BATCH)
        return self


class InviteBatchCreate(StrictModel):
    """1 to 100 invitations, validated together: one invalid item refuses the whole batch
    (422 naming its index) and nothing is sent."""

    invites: Annotated[list[BatchInvite], Field(min_length=1, max_length=MAX_BATCH_EMAILS)]

    @model_validator(mode="after")
    def _single_tenant(self) -> InviteBatchCreate:
        _one_tenant([invite.tenant_id for invite in self.invites], "invites")
        return self


class EmailBatchCreate(StrictModel):
    """1 to 100 emails, validated together: one invalid item refuses the whole batch (422
    naming its index) and nothing is sent."""

    emails: Annotated[list[BatchEmail], Field(min_length=1, max_length=MAX_BATCH_EMAILS)]

    @model_validator(mode="after")
    def _single_tenant(self) -> EmailBatchCreate:
        _one_tenant([email.tenant_id for email in self.emails], "emails")
        return self


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
    status_url: str


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
    attempt_count: int
    attempts: list[Attempt]
    last_error: ErrorInfo | None
    provider_message_id: str | None
    transport: str | None
    created_at: str
    updated_at: str
    sent_at: str | None
    send_at: str | None = None
    cancelled_at: str | None = None
    tenant_id: str | None = None
    delivery_events: list[DeliveryEvent] = []


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
    type: Literal["accepted", "scheduled", "attempt", "sent", "delivery", "failed", "cancelled"]
    attempt: int | None = None
    outcome: str | None = None
    http_status: int | None = None
    error_type: str | None = None
    detail: str | None = None
    event_type: str | None = None
    event_id: str | None = None
    provider_message_id: str | None = None


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
    attempts: list[Attempt]
    last_error: ErrorInfo | None
    items: list[BatchItemStatus]


class CancelAccepted(BaseModel):
    id: str
    status: SendStatus


class WebhookAck(BaseModel):
    status: str


class Problem(BaseModel):
    """Error body of every 4xx/5xx answer."""

    detail: str


ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": Problem} for code in (400, 401, 403, 404, 409, 413, 429, 503)
}
