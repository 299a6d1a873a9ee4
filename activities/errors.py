"""Error types shared by the send activity and the workflows that decide what to do next.

The activity classifies every provider answer (see shared/reference §1.4); the workflow
only reads the type, whether it is permanent, and whether it proves the provider did not
accept the email (`NOT_ACCEPTED`: every other failure leaves the outcome unknown).
"""

from __future__ import annotations

# Transient: the workflow retries with the same idempotency key.
RATE_LIMITED = "ResendRateLimited"
DAILY_QUOTA_EXCEEDED = "ResendDailyQuotaExceeded"
CONCURRENT_REQUEST = "ResendConcurrentIdempotentRequest"
PROVIDER_UNAVAILABLE = "ResendServerError"
NETWORK_ERROR = "ResendNetworkError"
# The activity could not read the pinned message from its workflow: the provider was not called.
MESSAGE_UNAVAILABLE = "PinnedMessageUnavailable"
# Nothing was sent: this worker lacks INVITE_TOKEN_SECRET; one that has it will send.
INVITE_TOKEN_UNAVAILABLE = "InviteTokenUnavailable"

# Permanent: retrying cannot help; the send fails at once.
REJECTED = "ResendRejected"
AUTH_FAILED = "ResendAuthError"
MONTHLY_QUOTA_EXCEEDED = "ResendMonthlyQuotaExceeded"
# 409 invalid_idempotent_request: this key was already used for a different payload, so an
# email was probably sent; resending under a new key could deliver twice.
IDEMPOTENCY_CONFLICT = "ResendIdempotencyConflict"
# The attempt started after its `not_after`: past it the provider's 24 h idempotency window
# could no longer deduplicate it, so the activity refused to call the provider.
SEND_WINDOW_CLOSED = "SendWindowClosed"
# The message the workflow answered is not the one it pinned (a bug): never send it.
MESSAGE_MISMATCH = "PinnedMessageMismatch"

PERMANENT_ERRORS = frozenset(
    {
        REJECTED,
        AUTH_FAILED,
        MONTHLY_QUOTA_EXCEEDED,
        IDEMPOTENCY_CONFLICT,
        SEND_WINDOW_CLOSED,
        MESSAGE_MISMATCH,
    }
)

# Failures that prove the provider did not accept the email: an answer that refused it
# (4xx other than 409), or no call at all. After any other failure (a timeout, a network
# error, a 5xx, a 409) the provider may have accepted it.
NOT_ACCEPTED = frozenset(
    {
        RATE_LIMITED,
        DAILY_QUOTA_EXCEEDED,
        MONTHLY_QUOTA_EXCEEDED,
        REJECTED,
        AUTH_FAILED,
        MESSAGE_UNAVAILABLE,
        INVITE_TOKEN_UNAVAILABLE,
        SEND_WINDOW_CLOSED,
        MESSAGE_MISMATCH,
    }
)
