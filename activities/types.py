"""Inputs and results of the activities (stdlib dataclasses only, shared with workflows).

Fields are only ever added at the end, with defaults, so recorded histories still decode.
"""

from dataclasses import dataclass, field, fields
from typing import Any


@dataclass
class EmailTag:
    """A Resend tag: ASCII letters, numbers, `_` and `-` only."""

    name: str
    value: str


@dataclass
class InviteToken:
    """Where an invite's managed token goes: derived at send time from a server secret, so
    it is never in history; `nonce` makes it differ from any invite that had this id."""

    invite_id: str
    nonce: str


@dataclass
class EmailAttachment:
    """A file sent with an email: base64 `content`, or a `path` (URL) the provider fetches."""

    filename: str | None = None
    content: str | None = None
    path: str | None = None
    content_type: str | None = None
    content_id: str | None = None


@dataclass
class EmailMessage:
    """One email exactly as it goes to the provider; recorded once, sent byte-identical.

    `cc`, `bcc`, `headers` and `attachments` came later (the Resend-compatible API): empty,
    they leave the provider payload of older messages unchanged.
    With `invite_token` set, the text and HTML hold `activities.invite_tokens.PLACEHOLDER`
    where the send puts the token (the same token on every attempt: same bytes).
    """

    sender: str
    to: list[str]
    subject: str
    html: str | None = None
    text: str | None = None
    reply_to: list[str] = field(default_factory=list)
    tags: list[EmailTag] = field(default_factory=list)
    cc: list[str] = field(default_factory=list)
    bcc: list[str] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    attachments: list[EmailAttachment] = field(default_factory=list)
    invite_token: InviteToken | None = None


@dataclass
class Invitation:
    """Who invites whom into which tenant, and the link that accepts: the first fields of
    an invite's workflow input and of a batch invite's item (one definition, same JSON)."""

    invite_id: str
    to: str
    sender: str
    tenant_name: str
    inviter_name: str
    accept_url: str
    role: str | None = None


def invitation_of(invitation: Invitation) -> dict[str, Any]:
    """The fields `Invitation` defines, as keywords: another kind of invitation from this one."""
    return {f.name: getattr(invitation, f.name) for f in fields(Invitation)}


@dataclass
class RenderInviteInput(Invitation):
    """What the invite template needs; `accept_url` carries the invite's secret token."""


@dataclass
class RenderInviteResult:
    message: EmailMessage


@dataclass
class RenderInviteBatchInput:
    invites: list[RenderInviteInput]


@dataclass
class RenderInviteBatchResult:
    """The rendered emails, in the order of the invitations."""

    messages: list[EmailMessage]


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
    # The providers (transport names) that may have taken this email in an earlier attempt
    # (an ambiguous failure: timeout, 5xx, connection lost after the request). None: the
    # engine does not say (then failover happens only on attempt 1). Non-empty: the failover
    # transport never moves this email to another provider (docs/providers.md).
    may_have_been_taken_by: list[str] | None = None


@dataclass(kw_only=True)
class Failover:
    """Set when the failover transport moved an email within one attempt: the provider
    (transport name) it left, and that provider's not-accepted failure (its error type).
    One definition for every record of a send that says so (same JSON as before: the
    payload converter writes fields by name)."""

    failover_from: str | None = None
    failover_reason: str | None = None


@dataclass(kw_only=True)
class AttemptTaken:
    """The provider took an attempt's call: its answer's status, the transport (name) that
    made the call, when the attempt started and how long it took, and whether delivery
    events will come for what it took (one email's attempt or a batch call's)."""

    http_status: int
    transport: str
    started_at: str
    duration_ms: float
    reports_delivery_events: bool = True


@dataclass
class SendAttemptResult(AttemptTaken, Failover):
    """The provider accepted the email (accepted, not yet delivered: webhooks tell that)."""

    provider_message_id: str


@dataclass
class AttemptFailureDetails(Failover):
    """Carried as the details of a failed attempt's `ApplicationError`, so it is in history
    (details are payloads: the codec encrypts them, unlike the failure's message).

    `provider_error` is the provider's error code (`rate_limit_exceeded`); `provider_message`
    its own text, which can quote a recipient (the failure's message never holds it).
    `not_accepted`: the provider provably did not take the message(s) (an answer that refused
    them, or no call made). `retry_may_duplicate`: the outcome is unknown and the transport
    cannot deduplicate a retry by key (do not retry: the send ends `undetermined`).
    `failover_from`: `transport` was tried after that provider's not-accepted failure.
    """

    http_status: int | None
    provider_error: str | None
    started_at: str
    duration_ms: float
    retry_after_seconds: float | None = None
    not_accepted: bool = False
    retry_may_duplicate: bool = False
    provider_message: str | None = None
    # Which provider (transport name) failed: the one the engine lists in
    # `SendAttemptInput.may_have_been_taken_by` when this failure is not `not_accepted`.
    transport: str | None = None


@dataclass
class AttemptProgress:
    """The send activity's heartbeat when a transport that cannot deduplicate a retry is
    about to send (SMTP, before DATA): if the attempt then times out or its worker is
    lost, the timeout carries this (its last heartbeat details) and the engine ends the
    email `undetermined` instead of sending it again."""

    transport: str
    retry_may_duplicate: bool = True


@dataclass
class Brand:
    """A tenant's look in its emails (None: our default)."""

    product_name: str | None = None
    logo_url: str | None = None
    accent_color: str | None = None
    footer: str | None = None


@dataclass(kw_only=True)
class RenderInviteEmailsInput(Invitation):
    """The invitation (and its reminder, if one is planned) of one invite, rendered at once.

    `accept_url` is the app's own link verbatim, or ours with the token's placeholder.
    """

    locale: str
    brand: Brand
    expires_at: str
    with_reminder: bool
    invite_token: InviteToken | None = None


@dataclass
class RenderInviteBatchEmailsInput:
    """The invitations (or reminders: `variant`) of a batch's invites, rendered at once."""

    invites: list[RenderInviteEmailsInput]
    variant: str


@dataclass
class RenderInviteEmailsResult:
    invitation: EmailMessage
    reminder: EmailMessage | None = None


@dataclass
class BatchAttemptInput:
    """One attempt to hand up to 100 emails to the provider in one call.

    `idempotency_key` is the same on every attempt of one call, and the messages the same
    bytes: a retry after a timeout is answered from the provider's first answer.

    Batches started before `batch-bounded-v1` carry the `messages` in every attempt; newer
    ones give None and `messages_sha256`, and the activity reads the messages pinned in the
    workflow (`pinned_batch` query) and checks them. `not_after` (ISO 8601): the last moment
    the provider may be called for this batch.
    """

    messages: list[EmailMessage] | None
    idempotency_key: str
    attempt: int = 1
    messages_sha256: str | None = None
    not_after: str | None = None


@dataclass
class BatchItemOutcome:
    """What the provider said of one email of a batch call: its id, or why it refused it."""

    provider_message_id: str | None = None
    refusal: str | None = None


@dataclass
class BatchAttemptResult(AttemptTaken):
    """The provider took the call; `items` in request order (refused ones carry a reason)."""

    items: list[BatchItemOutcome]
