"""Workflow inputs and results, signal/update names and payload shapes (wire types).

Fields are only ever added at the end, with defaults: recorded histories must still decode.
"""

from dataclasses import dataclass, field
from typing import ClassVar

from activities.delivery_contract import SendKind
from activities.types import (
    Brand,
    EmailMessage,
    Failover,
    Invitation,
    InviteToken,
    RenderInviteEmailsInput,
    invitation_of,
)
from workflows.policy import DeliveryPolicy as DeliveryPolicy
from workflows.policy import QueuePriority as QueuePriority
from workflows.status import InviteStatus, SendStatus

# Signal and update names (the webhook route and the operator CLI use them).
DELIVERY_EVENT_SIGNAL = "delivery_event"
CANCEL_UPDATE = "cancel"
# The durable form of a cancel (a signal): the API sends it when no worker answers the
# update; the workflow applies it when it next runs, if the email has not gone out by then.
CANCEL_REQUEST_SIGNAL = "cancel_request"
RESCHEDULE_UPDATE = "reschedule"
# Workflow `SendInviteEmail` (an invite's life): its updates and its query (the invite,
# where `status` is its email's).
ACCEPT_UPDATE = "accept"
REVOKE_UPDATE = "revoke"
INVITE_QUERY = "invite"
# Why an invite refuses an accept or a revoke (update validators; the API answers by type).
INVITE_NOT_FOUND = "InviteNotFound"
INVITE_ALREADY_ACCEPTED = "InviteAlreadyAccepted"
INVITE_EXPIRED = "InviteExpired"
INVITE_REVOKED = "InviteRevoked"
INVITE_LOCKED = "InviteLocked"
INVITE_TOKEN_REQUIRED = "InviteTokenRequired"
INVITE_TOKEN_NOT_EXPECTED = "InviteTokenNotExpected"


@dataclass
class SendEmailInput:
    """Workflow `SendEmail`: one caller-composed email (the message is pinned here)."""

    WORKFLOW: ClassVar[str] = "SendEmail"
    email_id: str
    message: EmailMessage
    tenant_id: str | None = None
    policy: DeliveryPolicy = field(default_factory=DeliveryPolicy)
    send_at: str | None = None
    accepted_at: str | None = None
    continued: "ContinuedDelivery | None" = None


@dataclass
class DeliveryEventInput:
    """One provider webhook event (signal `delivery_event`); `event_id` is the svix-id."""

    event_id: str
    type: str  # a ProviderEvent (others are ignored)
    occurred_at: str | None = None
    detail: str | None = None
    # Our public id of the email (its webhook tag): a batch routes the event to that item.
    email_id: str | None = None
    # The `message` tag: which of an invite's emails (`invitation` or `reminder`) it is about.
    message: str | None = None


@dataclass
class DeliveryEventRecord:
    """A delivery event as the workflow applied it."""

    event_id: str
    type: str
    received_at: str
    occurred_at: str | None = None
    detail: str | None = None


@dataclass
class SeenEvents:
    """Which delivery events a workflow has counted (see `workflows.delivery.events`): a
    compact key per event, at most a fixed number of them; the latest `occurred_at` among
    keys that had to give way stands for them (`watermark`)."""

    keys: list[str] = field(default_factory=list)
    watermark: str | None = None


@dataclass
class CancelInput:
    reason: str | None = None


@dataclass
class CancelResult:
    status: SendStatus


@dataclass
class RescheduleInput:
    """The new `send_at` of a scheduled send (ISO 8601 with a timezone)."""

    send_at: str


@dataclass
class RescheduleResult:
    status: SendStatus
    send_at: str


@dataclass
class AttemptRecord(Failover):
    """One send attempt as the workflow saw it; the list of these is the audit trail."""

    attempt: int
    scheduled_at: str
    finished_at: str
    outcome: str  # accepted | transient_error | permanent_error | timeout
    started_at: str | None = None
    http_status: int | None = None
    error_type: str | None = None
    error_message: str | None = None
    provider_message_id: str | None = None
    retry_in_seconds: float | None = None
    # The provider this attempt reached (`resend`, `smtp`): the one that sent it, or the one
    # whose failure this is (None: unknown, e.g. a timeout); `Failover` says what it left.
    provider: str | None = None


@dataclass
class EmailError:
    type: str
    message: str


@dataclass
class EmailStatusResult(Failover):
    """The answer of the `status` query and each workflow's result."""

    id: str
    kind: SendKind
    status: SendStatus
    created_at: str
    updated_at: str
    attempts: list[AttemptRecord] = field(default_factory=list)
    provider_message_id: str | None = None
    transport: str | None = None
    sent_at: str | None = None
    last_error: EmailError | None = None
    send_at: str | None = None
    delivery_events: list[DeliveryEventRecord] = field(default_factory=list)
    cancelled_at: str | None = None
    tenant_id: str | None = None
    # Every attempt counts here; `attempts` keeps the first few and the most recent ones.
    attempt_count: int = 0
    attempts_omitted: int = 0
    # The time of the first attempt, and the last moment the provider may be called (the
    # provider deduplicates the idempotency key for 24 h after its first use).
    first_attempt_at: str | None = None
    not_after: str | None = None
    # Every provider event counts here; `delivery_events` keeps the first and the latest.
    delivery_event_count: int = 0
    delivery_events_omitted: int = 0
    cancel_requested_at: str | None = None
    # True once an attempt's outcome is unknown (a timeout, a network error, a 5xx, a 409):
    # the provider may have accepted the email, so it can no longer be cancelled, and a send
    # that ends unaccepted ends `undetermined`, not `failed`.
    provider_may_have_accepted: bool = False
    # How many workflow runs the send has taken (it continues as new to bound its history).
    runs: int = 1
    # The provider that sent it (`transport` names the same; kept for older readers);
    # `Failover` says what it left.
    provider: str | None = None
    # The providers that may have taken this email in a failed attempt (an ambiguous
    # outcome; `unknown` when the attempt could not say which): every later attempt goes to
    # them only, never to another provider (docs/providers.md, "Across attempts").
    may_have_been_taken_by: list[str] = field(default_factory=list)
    # The coalesced provider call that carried it (None: its own call).
    call_id: str | None = None


@dataclass
class ContinuedDelivery:
    """What a send carries into its next run when it continues as new.

    The message is the one pinned in the first run (an invite is never rendered again); the
    state carries the attempt count, the kept attempts and events, the send window.
    """

    state: EmailStatusResult
    # None when the workflow input already holds the message (`SendEmailInput`).
    message: EmailMessage | None = None
    backoff_seconds: float | None = None
    sent: bool = False
    # The end of the wait for delivery events (ISO 8601), once sent.
    tracking_until: str | None = None
    # Unused since 1.0 (the events are deduplicated by `seen`, applied from the state).
    seen_event_ids: list[str] = field(default_factory=list)
    pending_events: list[DeliveryEventRecord] = field(default_factory=list)
    seen: "SeenEvents | None" = None


@dataclass
class InviteInput(Invitation):
    """Workflow `SendInviteEmail`: one invitation's life (its email, a reminder, accept,
    expiry, revoke).

    `accept_url` is the app's own link verbatim, or ours holding the token's placeholder;
    for ours, `invite_token` says how the send derives the token and `token_digest` is its
    keyed hash, the only form of it this workflow ever sees.
    """

    WORKFLOW: ClassVar[str] = "SendInviteEmail"
    tenant_id: str | None = None
    policy: DeliveryPolicy = field(default_factory=DeliveryPolicy)
    # ISO 8601 UTC; the invitation waits on a durable timer until then.
    send_at: str | None = None
    locale: str = "en"
    brand: Brand = field(default_factory=Brand)
    expires_in_seconds: float = 7 * 86400.0
    remind_after_seconds: float | None = None
    invite_token: InviteToken | None = None
    token_digest: str | None = None
    # Set when a run continues as new (bounded history): what the invite carries over.
    continued: "InviteCarry | None" = None

    def render_input(self, expires_at: str) -> RenderInviteEmailsInput:
        """What the template needs (the workflow's render, and the API's preview)."""
        return RenderInviteEmailsInput(
            **invitation_of(self),
            locale=self.locale,
            brand=self.brand,
            expires_at=expires_at,
            with_reminder=self.remind_after_seconds is not None,
            invite_token=self.invite_token,
        )


@dataclass
class InviteState:
    """The answer of the `invite` query and the workflow's result."""

    invite_id: str
    status: InviteStatus
    to: str
    link: str  # "managed" (our token) | "app" (the app's own link)
    locale: str
    created_at: str
    expires_at: str
    tenant_id: str | None = None
    role: str | None = None
    remind_at: str | None = None
    accepted_at: str | None = None
    revoked_at: str | None = None
    expired_at: str | None = None
    wrong_tokens: int = 0
    invitation: EmailStatusResult | None = None
    reminder: EmailStatusResult | None = None
    # Why no reminder went out when one was due (e.g. the invitation bounced).
    reminder_skipped: str | None = None


@dataclass
class AcceptInput:
    """Update `accept`. `token_digest`: of the token presented (None for an app's link);
    `tenant_id`: the caller's tenant, None for the operator (any)."""

    token_digest: str | None = None
    tenant_id: str | None = None
    # Which invite of a batch (`inv_<key>_<item>`); None for a single invite.
    item: int | None = None


@dataclass
class AcceptResult:
    accepted: bool  # False: a wrong token (counted)
    invite: InviteState


@dataclass
class RevokeInput:
    tenant_id: str | None = None
    item: int | None = None  # as `AcceptInput.item`


@dataclass
class RevokeResult:
    invite: InviteState
    # The invitation (or reminder) was cancelled before it went out.
    email_cancelled: bool


@dataclass
class InviteCarry:
    """What an invite carries into its next run when it continues as new: its state, its
    emails as rendered in the first run (never rendered again) and each send's carry."""

    state: InviteState
    invitation: EmailMessage
    reminder: EmailMessage | None = None
    # None: the send had not started (or, for the reminder, was not due yet).
    email: ContinuedDelivery | None = None
    email_done: bool = False
    reminder_started: bool = False
    reminder_email: ContinuedDelivery | None = None
    reminder_done: bool = False
