"""Error types shared by the send activity and the workflows that decide what to do next.

The activity classifies every provider answer (see shared/reference §1.4); the workflow
only reads the type and whether it is permanent.
"""

from __future__ import annotations

# Transient: the workflow retries with the same idempotency key.
RATE_LIMITED = "ResendRateLimited"
DAILY_QUOTA_EXCEEDED = "ResendDailyQuotaExceeded"
CONCURRENT_REQUEST = "ResendConcurrentIdempotentRequest"
PROVIDER_UNAVAILABLE = "ResendServerError"
NETWORK_ERROR = "ResendNetworkError"
# Nothing was sent: this worker lacks INVITE_TOKEN_SECRET; one that has it will send.
INVITE_TOKEN_UNAVAILABLE = "InviteTokenUnavailable"

# Permanent: retrying cannot help; the send fails at once.
REJECTED = "ResendRejected"
AUTH_FAILED = "ResendAuthError"
MONTHLY_QUOTA_EXCEEDED = "ResendMonthlyQuotaExceeded"
# 409 invalid_idempotent_request: this key was already used for a different payload, so an
# email was probably sent; resending under a new key could deliver twice.
IDEMPOTENCY_CONFLICT = "ResendIdempotencyConflict"

PERMANENT_ERRORS = frozenset({REJECTED, AUTH_FAILED, MONTHLY_QUOTA_EXCEEDED, IDEMPOTENCY_CONFLICT})
