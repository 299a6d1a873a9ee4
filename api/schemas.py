"""Request and response models of the HTTP API (pydantic stays at this edge)."""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime, timedelta
from email.errors import HeaderParseError
from email.header import decode_header, make_header
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

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
from activities.templating import LOCALE_TAG, TEMPLATE_NAME
from workflows.status import InviteStatus, SendStatus

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
    """`addr` or `Name <addr>` in its one canonical form: the domain as IDNA ASCII, lower
    case (`acme。com` and `acme．com` are `acme.com`), checked and forwarded as such; a
    display name that reads as an address once decoded is refused."""
    _single_line(value)
    match = _SENDER.fullmatch(value)
    if match is None:
        raise ValueError('must be one address or "Name <address@domain>"')
    address = match["address"] or match["bare"]
    try:
        valid = validate_email(address, check_deliverability=False)
    except EmailNotValidError as err:
        raise ValueError(f"invalid sender address: {err}") from None
    canonical = f"{valid.local_part}@{valid.ascii_domain.lower()}"
    if match["bare"]:
        return canonical
    name = match["name"].strip()
    if _poses_as_address(name):
        raise ValueError("the display name must not contain an address (@), even encoded")
    return f"{name} <{canonical}>" if name else canonical


def _poses_as_address(name: str) -> bool:
    """Whether a display name shows an `@` once decoded (RFC 2047) and normalised (NFKC:
    `＠` and `﹫` are `@`), which a mail client would show as the sender."""
    try:
        decoded = str(make_header(decode_header(name)))
    except (HeaderParseError, LookupError, UnicodeDecodeError, ValueError):
        return True  # an encoded word we cannot read is not shown as a name
    return any("@" in unicodedata.normalize("NFKC", text) for text in (name, decoded))


# `address` or `Display Name <address>`: one address, no quoting, no lists.
_SENDER = re.compile(r"(?P<name>[^<>\"@,;]*)<(?P<address>[^<>\s,;]+)>|(?P<bare>[^<>\s,;\"]+)")
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


LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
# Characters a browser and our parser could read differently, or that break out of markup.
_URL_UNSAFE = re.compile(r"[^\x21-\x7e]|[\\<>\"'`{}|^]")


def link_shape_problem(value: str) -> str | None:
    """Why `value` is not a link we put in an email, by its shape alone (None: it is one);
    hosts and ports a tenant allows are `api.links`'s question."""
    if _URL_UNSAFE.search(value):
        return "must be plain ASCII without spaces, quotes, backslashes or <>{}|^`"
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return "must be an absolute https:// URL"
    if "@" in parts.netloc:
        return "must not carry a user name or password"
    if parts.scheme == "http" and parts.hostname not in LOOPBACK_HOSTS:
        return "must use https (http only for localhost)"
    try:
        port = parts.port
    except ValueError:
        return "must have a valid port (1-65535) or none"
    if port == 0 or parts.netloc.endswith(":"):
        return "must have a valid port (1-65535) or none"
    return None


def _accept_url(value: str) -> str:
    if problem := link_shape_problem(value):
        raise ValueError(problem)
    return value


AcceptUrl = Annotated[
    str,
    NoLineBreaks,
    Field(min_length=1, max_length=2048),
    AfterValidator(_accept_url),
    Field(
        description="The app's own accept link (with its own token), sent verbatim. Its "
        "host must be one the tenant allows (default: APP_BASE_URL's). Without it, we "
        "issue the token and link to {APP_BASE_URL}/invites/accept?invite=&token=."
    ),
]
Locale = Annotated[
    str,
    Field(
        min_length=2,
        max_length=35,
        pattern=f"^{LOCALE_TAG.pattern}$",
        description="en (default), de, fr, es, ja, or a locale of TEMPLATE_DIR; "
        "de-AT falls back to de; one no template has is a 422.",
    ),
]


class InviteCreate(StrictModel):
    """An invitation to a tenant: the app's own link, or one with a token we issue."""

    email: Address
    tenant_name: Name
    inviter_name: Name
    role: Annotated[SingleLine, Field(min_length=1, max_length=100)] | None = None
    tenant_id: TenantId | None = None
    send_at: SendAt | None = None
    accept_url: AcceptUrl | None = None
    locale: Locale | None = None
    expires_in_days: Annotated[int, Field(ge=1, le=30)] = 7
    remind_after_days: Annotated[
        int | None,
        Field(ge=1, le=29, description="One reminder this many days in, if not accepted."),
    ] = None

    @model_validator(mode="after")
    def _in_order(self) -> InviteCreate:
        if self.remind_after_days is not None and self.remind_after_days >= self.expires_in_days:
            raise ValueError("remind_after_days must be less than expires_in_days")
        if self.send_at is not None:
            first_due = self.remind_after_days or self.expires_in_days
            if self.send_at >= datetime.now(UTC) + timedelta(days=first_due):
                raise ValueError("send_at must come before the reminder and the expiry")
        return self


class InviteAcceptBody(StrictModel):
    """The token from the accept link (omit it for an invite with the app's own link)."""

    token: Annotated[str, Field(min_length=1, max_length=256)] | None = None


TagText = Annotated[
    str, NoLineBreaks, Field(min_length=1, max_length=256, pattern=r"^[A-Za-z0-9_-]+$")
]


class Tag(StrictModel):
    name: TagText
    value: TagText


class EmailCreate(StrictModel):
    """A caller-composed email: `html` and/or `text`, or a `template` with `variables`."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, populate_by_name=True)

    to: Recipients
    subject: Annotated[SingleLine, Field(min_length=1, max_length=998)] | None = None
    html: Annotated[str, Field(min_length=1, max_length=MAX_BODY_CHARS)] | None = None
    text: Annotated[str, Field(min_length=1, max_length=MAX_BODY_CHARS)] | None = None
    template: (
        Annotated[
            str,
            Field(
                pattern=f"^{TEMPLATE_NAME.pattern}$",
                description="A template of templates/ or TEMPLATE_DIR (e.g. invite), instead of "
                "html/text; its subject unless `subject` is given.",
            ),
        ]
        | None
    ) = None
    variables: Annotated[dict[str, Any], Field(max_length=100)] | None = None
    locale: Locale | None = None
    sender: Sender | None = Field(default=None, alias="from")
    reply_to: Recipients | None = None
    tags: Annotated[list[Tag], Field(max_length=10)] | None = None
    tenant_id: TenantId | None = None
    send_at: SendAt | None = None

    @model_validator(mode="after")
    def _has_body(self) -> EmailCreate:
        if self.template is not None:
            if self.html is not None or self.text is not None:
                raise ValueError("give a template or html/text, not both")
        elif self.variables is not None or self.locale is not None:
            raise ValueError("variables and locale go with a template")
        elif self.html is None and self.text is None:
            raise ValueError("give html, text or both (or a template)")
        elif self.subject is None:
            raise ValueError("subject is required without a template")
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


# What an invite's life (workflow `Invite`) takes and a batch invite does not.
INVITE_LIFE_FIELDS = frozenset({"accept_url", "locale", "expires_in_days", "remind_after_days"})


class BatchInvite(InviteCreate):
    """An invitation of a batch: as `POST /v1/invites` takes it, without `send_at`."""

    @model_validator(mode="after")
    def _not_scheduled(self) -> BatchInvite:
        if self.send_at is not None:
            raise ValueError(NO_SCHEDULING_IN_BATCH)
        given = sorted(INVITE_LIFE_FIELDS & self.model_fields_set)
        if given:
            raise ValueError(
                f"{', '.join(given)}: only POST /v1/invites takes these (a batch invite is "
                "the fixed English email of SendInviteEmail)"
            )
        return self


class BatchEmail(EmailCreate):
    """An email of a batch: as `POST /v1/emails` takes it, without `send_at` (and, like
    every email here, without attachments, which Resend's batch endpoint refuses)."""

    @model_validator(mode="after")
    def _not_scheduled(self) -> BatchEmail:
        if self.send_at is not None:
            raise ValueError(NO_SCHEDULING_IN_BATCH)
        if self.template is not None:
            raise ValueError("a batch email gives html and/or text; templates: POST /v1/emails")
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
    invite_id: str
    status: InviteStatus
    email: str
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
