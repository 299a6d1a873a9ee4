"""The status vocabulary of a send and the provider (Resend) event names that move it."""

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
