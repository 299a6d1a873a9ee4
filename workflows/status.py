"""The status vocabulary of a send and the provider (Resend) events that move it.

Both are `StrEnum`s: a member is its string, so payloads, search attributes and JSON
answers carry the same plain words as before the enums existed.
"""

from enum import StrEnum


class SendStatus(StrEnum):
    """Where a send stands. `sending` and `retrying` are transient and never reach visibility."""

    SCHEDULED = "scheduled"
    QUEUED = "queued"
    SENDING = "sending"
    RETRYING = "retrying"
    # The provider accepted the email (a 2xx); whether it reached the inbox comes later.
    SENT = "sent"
    # The provider provably did not accept it (refused before any attempt whose outcome is
    # unknown): resubmitting it is safe.
    FAILED = "failed"
    # The send ended after an attempt whose outcome is unknown (timeout, network error, 5xx,
    # 409 invalid_idempotent_request): the provider may have accepted it, so resubmitting it
    # under a new key may send it twice.
    UNDETERMINED = "undetermined"
    CANCELLED = "cancelled"
    DELIVERY_DELAYED = "delivery_delayed"
    DELIVERED = "delivered"
    BOUNCED = "bounced"
    COMPLAINED = "complained"
    SUPPRESSED = "suppressed"


class ProviderEvent(StrEnum):
    """Resend's webhook event types that we track (others are acknowledged and ignored)."""

    DELIVERED = "email.delivered"
    DELIVERY_DELAYED = "email.delivery_delayed"
    BOUNCED = "email.bounced"
    COMPLAINED = "email.complained"
    FAILED = "email.failed"
    SUPPRESSED = "email.suppressed"


# The status each tracked provider event gives the send.
DELIVERY_EVENT_STATUS: dict[str, SendStatus] = {
    ProviderEvent.DELIVERED: SendStatus.DELIVERED,
    ProviderEvent.DELIVERY_DELAYED: SendStatus.DELIVERY_DELAYED,
    ProviderEvent.BOUNCED: SendStatus.BOUNCED,
    ProviderEvent.COMPLAINED: SendStatus.COMPLAINED,
    ProviderEvent.FAILED: SendStatus.FAILED,
    ProviderEvent.SUPPRESSED: SendStatus.SUPPRESSED,
}
# Outcomes of a send; a later `delivery_delayed` does not undo one.
FINAL_DELIVERY_STATUSES = frozenset(
    {
        SendStatus.DELIVERED,
        SendStatus.BOUNCED,
        SendStatus.COMPLAINED,
        SendStatus.FAILED,
        SendStatus.SUPPRESSED,
    }
)
# After one of these the provider has nothing more to tell. `delivered` is not among them:
# a recipient can still mark the email as spam (`email.complained`) after delivery.
ENDING_DELIVERY_STATUSES = FINAL_DELIVERY_STATUSES - {SendStatus.DELIVERED}


class InviteStatus(StrEnum):
    """Where an invite's life stands (workflow `Invite`); the last three end it."""

    PENDING = "pending"
    ACCEPTED = "accepted"
    EXPIRED = "expired"
    REVOKED = "revoked"
