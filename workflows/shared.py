"""Workflow inputs and results, task queues and workflow-id prefixes.

Workflow ids are business keys (`invite-<hex>`, `email-<hex>`), never an address: ids are
stored in plain text. Public ids carry a type prefix (`inv_`, `em_`) so one status route
serves both kinds.
"""

from dataclasses import dataclass, field

from temporalio.common import SearchAttributeKey

from activities.types import EmailMessage

# Default queue of provider calls (settings can name another); it is rate-limited queue-wide.
SEND_TASK_QUEUE = "durable-mail-send"

INVITE_ID_PREFIX = "inv_"
EMAIL_ID_PREFIX = "em_"
_WORKFLOW_PREFIX = {INVITE_ID_PREFIX: "invite-", EMAIL_ID_PREFIX: "email-"}

KIND_INVITE = "invite"
KIND_EMAIL = "email"
_PUBLIC_PREFIX = {wf: public for public, wf in _WORKFLOW_PREFIX.items()}

# Search attributes (registered by `make dev`, the tests and docker-compose). Values are
# plain text in Temporal: statuses, kinds and ids only, never an address.
EMAIL_STATUS = SearchAttributeKey.for_keyword("EmailStatus")
EMAIL_KIND = SearchAttributeKey.for_keyword("EmailKind")
TENANT_ID = SearchAttributeKey.for_keyword("TenantId")
PROVIDER_MESSAGE_ID = SearchAttributeKey.for_keyword("ProviderMessageId")

# Statuses of a send. `sending` and `retrying` are transient and never reach visibility.
STATUS_SCHEDULED = "scheduled"
STATUS_QUEUED = "queued"
STATUS_SENT = "sent"
STATUS_FAILED = "failed"
STATUS_CANCELLED = "cancelled"
STATUSES = (
    STATUS_SCHEDULED,
    STATUS_QUEUED,
    "sending",
    "retrying",
    STATUS_SENT,
    STATUS_FAILED,
    STATUS_CANCELLED,
    "delivery_delayed",
    "delivered",
    "bounced",
    "complained",
    "suppressed",
)
# Resend webhook event -> the status it gives the email.
DELIVERY_EVENT_STATUS = {
    "email.delivered": "delivered",
    "email.delivery_delayed": "delivery_delayed",
    "email.bounced": "bounced",
    "email.complained": "complained",
    "email.failed": STATUS_FAILED,
    "email.suppressed": "suppressed",
}
# Outcomes of a send; a later `delivery_delayed` does not undo one.
FINAL_DELIVERY_STATUSES = frozenset(
    {"delivered", "bounced", "complained", STATUS_FAILED, "suppressed"}
)
# After one of these the provider has nothing more to tell. `delivered` is not among them:
# a recipient can still mark the email as spam (`email.complained`) after delivery.
ENDING_DELIVERY_STATUSES = FINAL_DELIVERY_STATUSES - {"delivered"}
# Signal and update names (the webhook route and the operator CLI use them).
DELIVERY_EVENT_SIGNAL = "delivery_event"
CANCEL_UPDATE = "cancel"


def workflow_id_for(public_id: str) -> str | None:
    """`inv_abc` -> `invite-abc`; None for an id that is not ours."""
    for id_prefix, wf_prefix in _WORKFLOW_PREFIX.items():
        rest = public_id.removeprefix(id_prefix)
        if rest != public_id and rest.isalnum() and len(rest) <= 64:
            return wf_prefix + rest
    return None


def public_id_for(workflow_id: str) -> str | None:
    """`invite-abc` -> `inv_abc`; None for a workflow id that is not ours."""
    for wf_prefix, id_prefix in _PUBLIC_PREFIX.items():
        if workflow_id.startswith(wf_prefix):
            return id_prefix + workflow_id.removeprefix(wf_prefix)
    return None


@dataclass
class DeliveryPolicy:
    """How long and how often to retry; comes from settings via the API."""

    initial_backoff_seconds: float = 2.0
    max_backoff_seconds: float = 300.0
    window_seconds: float = 23 * 3600.0
    attempt_timeout_seconds: float = 30.0
    send_task_queue: str = SEND_TASK_QUEUE
    # How long to wait for the provider's delivery outcome (webhooks) after the send.
    delivery_wait_seconds: float = 72 * 3600.0


@dataclass
class SendInviteEmailInput:
    invite_id: str
    to: str
    sender: str
    tenant_name: str
    inviter_name: str
    accept_url: str
    role: str | None = None
    tenant_id: str | None = None
    policy: DeliveryPolicy = field(default_factory=DeliveryPolicy)
    # ISO 8601 UTC; the workflow waits on a durable timer until then.
    send_at: str | None = None


@dataclass
class SendEmailInput:
    email_id: str
    message: EmailMessage
    tenant_id: str | None = None
    policy: DeliveryPolicy = field(default_factory=DeliveryPolicy)
    send_at: str | None = None


@dataclass
class DeliveryEventInput:
    """One provider webhook event (signal `delivery_event`); `event_id` is the svix-id."""

    event_id: str
    type: str  # email.delivered | email.bounced | ... (see DELIVERY_EVENT_STATUS)
    occurred_at: str | None = None
    detail: str | None = None


@dataclass
class DeliveryEventRecord:
    """A delivery event as the workflow applied it."""

    event_id: str
    type: str
    received_at: str
    occurred_at: str | None = None
    detail: str | None = None


@dataclass
class CancelInput:
    reason: str | None = None


@dataclass
class CancelResult:
    status: str


@dataclass
class AttemptRecord:
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


@dataclass
class EmailError:
    type: str
    message: str


@dataclass
class EmailStatusResult:
    """The answer of the `status` query and each workflow's result."""

    id: str
    kind: str
    status: str  # one of STATUSES
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
