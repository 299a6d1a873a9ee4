"""Request and response models of the HTTP API (pydantic stays at this edge)."""

from __future__ import annotations

import re
import unicodedata
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

from activities.delivery_contract import RESERVED_TAG_NAMES, SendKind
from workflows.status import SendStatus

# Resend's own cap on recipients per email.
MAX_RECIPIENTS = 50
MAX_BODY_CHARS = 256_000
# html + text together, in UTF-8. The message is recorded in the workflow input (once per
# run), so it stays far below Temporal's 2 MB payload limit; JSON escapes non-ASCII, so the
# largest (4-byte characters) takes ~393 KB there. Gmail clips HTML past ~100 KB.
MAX_CONTENT_BYTES = 128 * 1024
# Unicode's own line breaks (NEL, LINE and PARAGRAPH SEPARATOR) beside CR and LF: Python's
# email package, and other mail software, split header lines on them too.
_LINE_BREAK_CATEGORIES = frozenset({"Cc", "Zl", "Zp"})


def _is_control(ch: str) -> bool:
    """A control character or a line/paragraph separator (a tab is allowed in headers)."""
    return ch != "\t" and unicodedata.category(ch) in _LINE_BREAK_CATEGORIES


def _no_line_breaks(value: Any) -> Any:
    # Checked before whitespace stripping: a line break or another control character
    # anywhere in a header value is refused, even trailing (U+0085 and U+2028 are
    # whitespace to `str.strip`), so header injection never depends on what a later step
    # strips.
    if isinstance(value, str) and any(_is_control(ch) for ch in value):
        raise ValueError(
            "must not contain line breaks (CR, LF, U+0085, U+2028, U+2029) or other control "
            "characters (header injection)"
        )
    return value


MAX_SCHEDULE_AHEAD = timedelta(days=30)


def _single_line(value: str) -> str:
    if any(_is_control(ch) for ch in value):
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
    # "Must be in the future" is checked by the service, after a repeat of an accepted
    # request (same Idempotency-Key) has been answered as it was: the clock moves on.
    if value.tzinfo is None:
        raise ValueError("must include a timezone, e.g. 2030-01-01T09:00:00Z")
    now = datetime.now(UTC)
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
    Field(description="Send later (ISO 8601 with timezone, in the future, up to 30 days ahead)."),
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


class EmailTimeline(BaseModel):
    id: str
    workflow_id: str
    status: SendStatus
    events: list[TimelineEvent]


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


ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": Problem} for code in (400, 401, 403, 404, 409, 413, 429, 503)
}
