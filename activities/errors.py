"""Error types shared by the send activity and the workflows that decide what to do next.

The activity classifies every provider answer (see shared/reference §1.4) into one of these
provider-neutral types; the failure's details (`AttemptFailureDetails`) say whether the
provider provably did not take the message(s) (`not_accepted`) and whether a retry could
send twice (`retry_may_duplicate`). Decide from those fields, not from these names.

Before 1.0 the types were named after Resend (`ResendRateLimited`, ...). Those names stay in
recorded histories and in the statuses of executions started then: `LEGACY_NAMES` maps each
to its new name, `canonical()` reads either, and `PERMANENT_ERRORS` / `NOT_ACCEPTED` hold
both spellings.
"""

from __future__ import annotations

# Transient: the workflow retries with the same idempotency key.
RATE_LIMITED = "ProviderRateLimited"
DAILY_QUOTA_EXCEEDED = "ProviderDailyQuotaExceeded"
CONCURRENT_REQUEST = "ProviderConcurrentRequest"
PROVIDER_UNAVAILABLE = "ProviderUnavailable"
NETWORK_ERROR = "ProviderNetworkError"
# No connection was made (refused, DNS failure, TLS handshake failure): nothing was sent.
PROVIDER_UNREACHABLE = "ProviderUnreachable"
# The provider answered that it did not take the message this time (an SMTP 4xx reply).
PROVIDER_DEFERRED = "ProviderDeferred"
# The activity could not read the pinned message from its workflow: the provider was not called.
MESSAGE_UNAVAILABLE = "PinnedMessageUnavailable"
# Nothing was sent: this worker lacks INVITE_TOKEN_SECRET; one that has it will send.
INVITE_TOKEN_UNAVAILABLE = "InviteTokenUnavailable"
# Nothing was sent: the attempt's turn at the provider's rate (the worker's pacer) would have
# come after its deadline; the next attempt queues again.
TURN_TOO_LATE = "ProviderTurnTooLate"

# Permanent: retrying cannot help; the send fails at once.
REJECTED = "ProviderRejected"
AUTH_FAILED = "ProviderAuthFailed"
MONTHLY_QUOTA_EXCEEDED = "ProviderMonthlyQuotaExceeded"
# 409 invalid_idempotent_request: this key was already used for a different payload, so an
# email was probably sent; resending under a new key could deliver twice.
IDEMPOTENCY_CONFLICT = "ProviderIdempotencyConflict"
# The attempt started after its `not_after`: past it the provider's 24 h idempotency window
# could no longer deduplicate it, so the activity refused to call the provider.
SEND_WINDOW_CLOSED = "SendWindowClosed"
# A coalesced call the provider provably did not take and cannot take now, behind a
# transport that fails over: its emails go alone, so each can move to the next provider.
SEND_ALONE = "SendAlone"
# The message the workflow answered is not the one it pinned (a bug): never send it.
MESSAGE_MISMATCH = "PinnedMessageMismatch"

# The names recorded before 1.0 (histories, statuses, API answers of those executions) -> the
# name the same failure has now. Never remove an entry: recorded histories keep the old name.
LEGACY_NAMES: dict[str, str] = {
    "ResendRateLimited": RATE_LIMITED,
    "ResendDailyQuotaExceeded": DAILY_QUOTA_EXCEEDED,
    "ResendConcurrentIdempotentRequest": CONCURRENT_REQUEST,
    "ResendServerError": PROVIDER_UNAVAILABLE,
    "ResendNetworkError": NETWORK_ERROR,
    "ResendRejected": REJECTED,
    "ResendAuthError": AUTH_FAILED,
    "ResendMonthlyQuotaExceeded": MONTHLY_QUOTA_EXCEEDED,
    "ResendIdempotencyConflict": IDEMPOTENCY_CONFLICT,
}


def canonical(error_type: str) -> str:
    """The current name of an error type, whichever release recorded it."""
    return LEGACY_NAMES.get(error_type, error_type)


def _with_legacy_names(types: set[str]) -> frozenset[str]:
    """`types` plus their pre-1.0 names, so a membership test reads either."""
    return frozenset(types | {old for old, new in LEGACY_NAMES.items() if new in types})


PERMANENT_ERRORS = _with_legacy_names(
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
NOT_ACCEPTED = _with_legacy_names(
    {
        RATE_LIMITED,
        DAILY_QUOTA_EXCEEDED,
        MONTHLY_QUOTA_EXCEEDED,
        REJECTED,
        AUTH_FAILED,
        MESSAGE_UNAVAILABLE,
        INVITE_TOKEN_UNAVAILABLE,
        TURN_TOO_LATE,
        SEND_WINDOW_CLOSED,
        MESSAGE_MISMATCH,
        PROVIDER_UNREACHABLE,
        PROVIDER_DEFERRED,
    }
)

# Not-accepted failures that say the provider cannot take mail now, whatever the message:
# the failover transport may move the email to the next provider after one of these. Not a
# rate limit (429: waiting is the answer, and the transport cannot know how much of the
# send window is left) nor a refusal of the message itself (another provider would refuse
# it too), nor the guards that fail before any provider is called.
PROVIDER_CANNOT_TAKE = _with_legacy_names(
    {
        PROVIDER_UNREACHABLE,
        AUTH_FAILED,
        DAILY_QUOTA_EXCEEDED,
        MONTHLY_QUOTA_EXCEEDED,
        PROVIDER_DEFERRED,
    }
)
