"""Resend's request and response shapes (https://resend.com/docs/api-reference/emails).

Field names, and what each accepts, follow Resend's API and its SDKs' types (`resend`
2.5x `SendParams`, `Attachment`, `Tag`, `Email`); what durable-mail cannot honour is refused
with a message that says so, never dropped silently.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    PrivateAttr,
    WithJsonSchema,
    model_validator,
)

from activities.delivery_contract import MAX_BATCH_EMAILS, RESERVED_TAG_NAMES
from api.fields import (
    MAX_BODY_CHARS,
    MAX_CONTENT_BYTES,
    MAX_RECIPIENTS,
    MAX_SCHEDULE_AHEAD,
    NoLineBreaks,
    SendAt,
    Sender,
    SingleLine,
)
from api.resend_compat.schedule import natural_time

# Attachments travel in the workflow input (and each attempt's activity input, like the
# body): base64 text, all attachments of one email together. Larger files go by `path`,
# a URL the provider fetches itself.
MAX_ATTACHMENT_BYTES = 128 * 1024
MAX_HEADERS = 50


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


# One address (`a@b.c` or `Name <a@b.c>`) or a list of them, as Resend takes them.
Addresses = Annotated[
    list[Sender],
    BeforeValidator(_as_list),
    Field(min_length=1, max_length=MAX_RECIPIENTS),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string"},
                {
                    "type": "array",
                    "items": {"type": "string"},
                    "minItems": 1,
                    "maxItems": MAX_RECIPIENTS,
                },
            ]
        }
    ),
]


def _iso_datetime(value: Any) -> Any:
    """ISO 8601, else a time in words as Resend takes them ("in 1 hour")."""
    if not isinstance(value, str):
        return value
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        pass
    found = natural_time(value)
    if found is None:
        raise ValueError(
            "must be ISO 8601 with a timezone (2030-01-01T09:00:00Z) or a time in words "
            "such as 'in 1 hour' or 'tomorrow at 9am'"
        )
    return found


def in_words(value: Any) -> str | None:
    """A `scheduled_at` as sent when it is in words (None for ISO 8601 or none)."""
    if not isinstance(value, str):
        return None
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return value
    return None


def _aware_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("must include a timezone, e.g. 2030-01-01T09:00:00Z")
    return value.astimezone(UTC)


def schedule_problem(value: datetime) -> str | None:
    """Why a send's `scheduled_at` cannot be honoured now (None: it can).

    Checked by the route after a repeat has been answered: a retry of a scheduled send
    made after its time has passed gets the first answer, as Resend's 24 h window promises.
    """
    now = datetime.now(UTC)
    if value <= now:
        return "must be in the future"
    if value > now + MAX_SCHEDULE_AHEAD:
        return "must be at most 30 days ahead"
    return None


def _ahead(value: datetime) -> datetime:
    # A reschedule has no repeat to answer: a time already past would send at once.
    if value <= datetime.now(UTC):
        raise ValueError("must be in the future")
    return value


# `PATCH /emails/{id}`: a new time, in the future and at most 30 days ahead.
ScheduledAt = Annotated[SendAt, BeforeValidator(_iso_datetime), AfterValidator(_ahead)]
# `POST /emails`: a time with a zone; whether it is still ahead is the route's question.
RequestedAt = Annotated[
    datetime,
    BeforeValidator(_iso_datetime),
    AfterValidator(_aware_utc),
    Field(
        description="Send later: ISO 8601 with timezone, or in words ('in 1 hour', "
        "'tomorrow at 9am', UTC unless the words name a zone), up to 30 days ahead."
    ),
]
TagPart = Annotated[str, Field(max_length=256, pattern=r"^[A-Za-z0-9_-]*$")]
HeaderName = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[!-9;-~]+$")]
HeaderValue = Annotated[str, NoLineBreaks, Field(max_length=998)]
# The `headers` a caller may add. Resend documents the field as "custom headers" and names
# `X-Entity-Ref-ID` and `List-Unsubscribe` as its uses; it takes the addresses and the
# route of a message from its own fields (`from`, `to`, `cc`, `bcc`, `reply_to`), which we
# check. So: `X-` headers, list and threading headers, and priority hints pass; an
# address, routing, signing or MIME header (From, Sender, Reply-To, Return-Path, To, Cc,
# Bcc, DKIM-Signature, Received, Content-*, ...) is refused, never forwarded.
ALLOWED_HEADERS = frozenset(
    {
        "list-unsubscribe",
        "list-unsubscribe-post",
        "list-id",
        "list-help",
        "list-archive",
        "in-reply-to",
        "references",
        "auto-submitted",
        "precedence",
        "importance",
        "priority",
    }
)


def allowed_header(name: str) -> bool:
    """Whether a caller may set header `name` (case-insensitive)."""
    lowered = name.lower()
    return lowered in ALLOWED_HEADERS or (lowered.startswith("x-") and len(lowered) > 2)


def _allowed_headers(headers: dict[str, str]) -> dict[str, str]:
    refused = sorted(name for name in headers if not allowed_header(name))
    if refused:
        raise ValueError(
            f"{', '.join(refused)} cannot be set here: addresses go in from, to, cc, bcc and "
            "reply_to (checked); headers may be X-*, List-*, In-Reply-To, References, "
            "Auto-Submitted, Precedence, Importance or Priority"
        )
    return headers


Headers = Annotated[
    dict[HeaderName, HeaderValue], Field(max_length=MAX_HEADERS), AfterValidator(_allowed_headers)
]
Line = Annotated[SingleLine, Field(min_length=1, max_length=255)]


class ResendModel(BaseModel):
    # Unknown fields are refused (a `template` or a newer field is not silently dropped);
    # bodies are kept byte for byte (no whitespace stripping).
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ResendTag(ResendModel):
    name: Annotated[TagPart, Field(min_length=1)]
    value: TagPart = ""


def _base64(value: str) -> str:
    try:
        base64.b64decode(value, validate=True)
    except binascii.Error:
        raise ValueError("must be base64 (or a list of byte values)") from None
    return value


class ResendAttachment(ResendModel):
    """A file: `content` (base64, or a list of byte values) and `filename`, or a `path` URL."""

    content: (
        Annotated[str, AfterValidator(_base64)] | list[Annotated[int, Field(ge=0, le=255)]] | None
    ) = None
    filename: Line | None = None
    path: Annotated[Line, Field(max_length=2048, pattern=r"^https?://")] | None = None
    content_type: Annotated[Line, Field(pattern=r"^[\w.+-]+/[\w.+-]+$")] | None = None
    content_id: Line | None = None
    inline_content_id: Line | None = None

    @model_validator(mode="after")
    def _content_or_path(self) -> ResendAttachment:
        if (self.content is None) == (self.path is None):
            raise ValueError("give either `content` (with `filename`) or `path`")
        if self.content is not None and self.filename is None:
            raise ValueError("an attachment with `content` needs a `filename`")
        return self

    def base64_content(self) -> str | None:
        """The content as base64 text (a list of byte values is encoded once, here)."""
        if isinstance(self.content, list):
            return base64.b64encode(bytes(self.content)).decode()
        return self.content


def _within_attachment_limit(attachments: list[ResendAttachment]) -> list[ResendAttachment]:
    size = sum(len(a.base64_content() or "") for a in attachments)
    if size > MAX_ATTACHMENT_BYTES:
        raise ValueError(
            f"attachments are {size} bytes in base64; durable-mail records at most "
            f"{MAX_ATTACHMENT_BYTES} per email. Send larger files by `path` (a URL)"
        )
    return attachments


class ResendSendRequest(ResendModel):
    """`POST /emails`: Resend's send-email body."""

    sender: Sender = Field(alias="from")
    to: Addresses
    subject: Annotated[SingleLine, Field(min_length=1, max_length=998)]
    cc: Addresses | None = None
    bcc: Addresses | None = None
    reply_to: Addresses | None = None
    html: Annotated[str, Field(max_length=MAX_BODY_CHARS)] | None = None
    # `""` is Resend's way to say: do not generate a text part from the HTML.
    text: Annotated[str, Field(max_length=MAX_BODY_CHARS)] | None = None
    headers: Headers | None = None
    attachments: (
        Annotated[list[ResendAttachment], AfterValidator(_within_attachment_limit)] | None
    ) = None
    tags: Annotated[list[ResendTag], Field(max_length=50)] | None = None
    scheduled_at: RequestedAt | None = None
    # `scheduled_at` as sent, when in words: a retry under the same Idempotency-Key sends
    # the same words, which name a later time; the request is the words (`ask_payload`).
    _scheduled_words: str | None = PrivateAttr(default=None)

    @model_validator(mode="wrap")
    @classmethod
    def _keep_words(cls, data: Any, handler: ModelWrapValidatorHandler[Any]) -> Any:
        model = handler(data)
        if isinstance(data, dict) and isinstance(model, ResendSendRequest):
            model._scheduled_words = in_words(data.get("scheduled_at"))
        return model

    def ask_payload(self) -> dict[str, Any]:
        """The request as its idempotency fingerprint sees it."""
        payload = self.model_dump(mode="json", by_alias=True)
        if self._scheduled_words is not None:
            payload["scheduled_at"] = self._scheduled_words
        return payload

    @model_validator(mode="after")
    def _within_limits(self) -> ResendSendRequest:
        if not self.html and not self.text:
            raise ValueError("give `html`, `text` or both")
        size = sum(len(part.encode()) for part in (self.html, self.text) if part)
        if size > MAX_CONTENT_BYTES:
            raise ValueError(f"html and text together must be at most {MAX_CONTENT_BYTES} bytes")
        if self.tags and any(t.name in RESERVED_TAG_NAMES for t in self.tags):
            raise ValueError("tag names 'kind' and 'email_id' are reserved by durable-mail")
        return self


class ResendBatchEmail(ResendSendRequest):
    """One email of `POST /emails/batch`: a send's body, without `attachments` or
    `scheduled_at` (Resend's batch takes neither; send such an email on its own)."""

    @model_validator(mode="after")
    def _batchable(self) -> ResendBatchEmail:
        for name in ("attachments", "scheduled_at"):
            if getattr(self, name) is not None:
                raise ValueError(f"`{name}` is not supported in a batch; send this email alone")
        return self


class BatchValidation(StrEnum):
    """`x-batch-validation`: refuse the whole batch for one invalid email, or only that one."""

    STRICT = "strict"
    PERMISSIVE = "permissive"


# The body of `POST /emails/batch`: an email that does not validate stays as it was sent, so
# that permissive mode can refuse it alone, by its index (the route validates it again).
BatchBody = Annotated[
    list[Annotated[ResendBatchEmail | Any, Field(union_mode="left_to_right")]],
    Field(min_length=1, max_length=MAX_BATCH_EMAILS),
]


class ResendUpdateRequest(ResendModel):
    """`PATCH /emails/{id}`: the new `scheduled_at` (the SDK repeats the `id` in the body)."""

    id: str | None = None
    scheduled_at: ScheduledAt


class ResendLastEvent(StrEnum):
    """Resend's `last_event` vocabulary (the subset our statuses reach)."""

    SCHEDULED = "scheduled"
    QUEUED = "queued"
    SENT = "sent"
    DELIVERY_DELAYED = "delivery_delayed"
    DELIVERED = "delivered"
    BOUNCED = "bounced"
    COMPLAINED = "complained"
    FAILED = "failed"
    CANCELED = "canceled"
    SUPPRESSED = "suppressed"
    # Not Resend's: an attempt's outcome stayed unknown (a timeout, a 5xx) until the send
    # ended; the email may have gone out, so resubmitting it may send it twice.
    UNDETERMINED = "undetermined"


class ResendSendResponse(BaseModel):
    id: str


class ResendBatchError(BaseModel):
    """An email of a permissive batch that was refused, by its index in the request."""

    index: int
    message: str


class ResendBatchResponse(BaseModel):
    """The ids of the accepted emails, in request order; `errors` in permissive mode."""

    data: list[ResendSendResponse]
    errors: list[ResendBatchError] | None = None


class ResendEmailRef(BaseModel):
    """The answer of update and cancel."""

    object: Literal["email"] = "email"
    id: str


class ResendListedEmail(BaseModel):
    """An email of `GET /emails`: Resend's email object without its bodies."""

    model_config = ConfigDict(populate_by_name=True)

    object: Literal["email"] = "email"
    id: str
    sender: str | None = Field(alias="from")
    to: list[str]
    subject: str | None
    cc: list[str] | None
    bcc: list[str] | None
    reply_to: list[str] | None
    created_at: str
    scheduled_at: str | None
    last_event: ResendLastEvent


class ResendEmail(ResendListedEmail):
    """`GET /emails/{id}`: Resend's email object."""

    html: str | None
    text: str | None


class ResendEmailList(BaseModel):
    """`GET /emails`: a page of emails, newest first."""

    object: Literal["list"] = "list"
    data: list[ResendListedEmail]
    has_more: bool


class ResendErrorBody(BaseModel):
    """Resend's error body; its SDKs raise an exception by `statusCode` and `name`."""

    statusCode: int  # Resend's spelling
    name: str
    message: str
