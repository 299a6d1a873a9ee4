"""Workflow inputs and results, task queues and workflow-id prefixes.

Workflow ids are business keys (`invite-<hex>`, `email-<hex>`), never an address: ids are
stored in plain text. Public ids carry a type prefix (`inv_`, `em_`) so one status route
serves both kinds.
"""

from dataclasses import dataclass, field

from activities.types import EmailMessage

# Default queue of provider calls (settings can name another); it is rate-limited queue-wide.
SEND_TASK_QUEUE = "durable-mail-send"

INVITE_ID_PREFIX = "inv_"
EMAIL_ID_PREFIX = "em_"
_WORKFLOW_PREFIX = {INVITE_ID_PREFIX: "invite-", EMAIL_ID_PREFIX: "email-"}

KIND_INVITE = "invite"
KIND_EMAIL = "email"


def workflow_id_for(public_id: str) -> str | None:
    """`inv_abc` -> `invite-abc`; None for an id that is not ours."""
    for id_prefix, wf_prefix in _WORKFLOW_PREFIX.items():
        rest = public_id.removeprefix(id_prefix)
        if rest != public_id and rest.isalnum() and len(rest) <= 64:
            return wf_prefix + rest
    return None


@dataclass
class DeliveryPolicy:
    """How long and how often to retry; comes from settings via the API."""

    initial_backoff_seconds: float = 2.0
    max_backoff_seconds: float = 300.0
    window_seconds: float = 23 * 3600.0
    attempt_timeout_seconds: float = 30.0
    send_task_queue: str = SEND_TASK_QUEUE


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


@dataclass
class SendEmailInput:
    email_id: str
    message: EmailMessage
    tenant_id: str | None = None
    policy: DeliveryPolicy = field(default_factory=DeliveryPolicy)


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
    status: str  # queued | sending | retrying | sent | failed
    created_at: str
    updated_at: str
    attempts: list[AttemptRecord] = field(default_factory=list)
    provider_message_id: str | None = None
    transport: str | None = None
    sent_at: str | None = None
    last_error: EmailError | None = None
