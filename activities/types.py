"""Inputs and results of the activities (stdlib dataclasses only, shared with workflows).

Fields are only ever added at the end, with defaults, so recorded histories still decode.
"""

from dataclasses import dataclass, field


@dataclass
class EmailTag:
    """A Resend tag: ASCII letters, numbers, `_` and `-` only."""

    name: str
    value: str


@dataclass
class EmailMessage:
    """One email exactly as it goes to the provider; recorded once, sent byte-identical."""

    sender: str
    to: list[str]
    subject: str
    html: str | None = None
    text: str | None = None
    reply_to: list[str] = field(default_factory=list)
    tags: list[EmailTag] = field(default_factory=list)


@dataclass
class RenderInviteInput:
    """What the invite template needs; `accept_url` carries the invite's secret token."""

    invite_id: str
    to: str
    sender: str
    tenant_name: str
    inviter_name: str
    accept_url: str
    role: str | None = None


@dataclass
class RenderInviteResult:
    message: EmailMessage


@dataclass
class SendAttemptInput:
    """One send attempt. `idempotency_key` is the same on every attempt of one email.

    Executions started before bounded history carry the `message` in every attempt. Newer
    ones leave it out (`None`) so that a long retry series does not record the message
    again and again: the activity reads the message its workflow pinned (query
    `pinned_message`) and checks it against `message_sha256` before sending it.
    `not_after` (ISO 8601) is the last moment the provider may be called for this email.
    """

    message: EmailMessage | None
    idempotency_key: str
    attempt: int = 1
    message_sha256: str | None = None
    not_after: str | None = None


@dataclass
class SendAttemptResult:
    """The provider accepted the email (accepted, not yet delivered: webhooks tell that)."""

    provider_message_id: str
    http_status: int
    transport: str
    started_at: str
    duration_ms: float


@dataclass
class AttemptFailureDetails:
    """Carried as the details of a failed attempt's `ApplicationError`, so it is in history."""

    http_status: int | None
    provider_error: str | None
    started_at: str
    duration_ms: float
    retry_after_seconds: float | None = None
