"""What every send tells the provider, whichever workflow makes it.

- The idempotency key: the same on every attempt of one send, derived from the workflow id
  (a business key, stable across retries, resets and continue-as-new, unlike the run id),
  so Resend deduplicates a retry after a timeout or a crash instead of sending twice.
- The correlation tags (`kind`, `email_id`): Resend echoes them in its webhooks, which is
  how a delivery event finds its send without a lookup.
- How the send activity reads the message its workflow pinned (the `pinned_message` query)
  and checks that it is the one pinned (`message_sha256`).

They live beside the activities because the invite renderer (an activity) writes the tags
into the message it records, and activities never import workflows.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from enum import StrEnum

from activities.types import EmailMessage, EmailTag


class SendKind(StrEnum):
    """What kind of send: a caller-composed email or a rendered invitation."""

    INVITE = "invite"
    EMAIL = "email"


# The query by which the send activity reads the message its workflow pinned.
PINNED_MESSAGE_QUERY = "pinned_message"
# ... and the batch activity, the messages of its batch.
PINNED_BATCH_QUERY = "pinned_batch"

# Resend's cap on the emails of one `POST /emails/batch` call.
MAX_BATCH_EMAILS = 100
KIND_TAG = "kind"
EMAIL_ID_TAG = "email_id"
# Which of an invite's emails (invitation or reminder) a webhook is about: both carry the
# invite's `email_id`, so both reach its one workflow.
MESSAGE_TAG = "message"
INVITATION = "invitation"
REMINDER = "reminder"
# A caller's own tags may not use these names: the webhook route trusts them.
RESERVED_TAG_NAMES = frozenset({KIND_TAG, EMAIL_ID_TAG})


def provider_idempotency_key(workflow_id: str) -> str:
    """`invite-abc` -> `invite-abc/send`: the `Idempotency-Key` of every attempt."""
    return f"{workflow_id}/send"


def reminder_idempotency_key(workflow_id: str) -> str:
    """`invite-abc` -> `invite-abc/reminder`: the reminder is another email, another key."""
    return f"{workflow_id}/reminder"


def batch_idempotency_key(workflow_id: str, call: int) -> str:
    """`batch-abc`, 0 -> `batch-abc/send/0`: the key of every attempt of one batch call."""
    return f"{workflow_id}/send/{call}"


def correlation_tags(kind: SendKind, email_id: str) -> list[EmailTag]:
    """The tags that bring the provider's webhooks back to this send (`email_id`: public id)."""
    return [EmailTag(KIND_TAG, kind.value), EmailTag(EMAIL_ID_TAG, email_id)]


def message_sha256(message: EmailMessage) -> str:
    """A digest of the message's fields (the workflow pins it, the activity checks it)."""
    canonical = json.dumps(asdict(message), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def batch_sha256(messages: list[EmailMessage]) -> str:
    """A digest of a batch's messages, in order (the workflow pins them, the activity checks)."""
    return hashlib.sha256("\n".join(message_sha256(m) for m in messages).encode()).hexdigest()
