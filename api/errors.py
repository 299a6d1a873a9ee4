"""What the send service refuses, in domain words; `api.error_handlers` answers them in HTTP.

Each error's message is safe to show the caller (no address, body or secret).
"""

from __future__ import annotations


class SendError(Exception):
    """Base of the service's refusals."""

    @property
    def detail(self) -> str:
        return str(self)


class NotFound(SendError):
    """No send with this id (unknown id, or no such workflow)."""


class Forbidden(SendError):
    """The caller's key may not do this (e.g. act for another tenant)."""


class SenderNotAllowed(SendError):
    """The sender address is not at one of the caller's sender domains.

    `field` is the request field that named the sender (None: the default sender was used).
    """

    def __init__(self, message: str, field: str | None) -> None:
        super().__init__(message)
        self.field = field


class Conflict(SendError):
    """The request contradicts what is recorded (an idempotency key reused for another body)."""


class IdempotencyKeyReused(Conflict):
    """An idempotency key already accepted a different request body."""


class NotCancellable(Conflict):
    """The send may have gone out already, or has ended: it can no longer be cancelled."""


class NotReschedulable(Conflict):
    """The send is no longer waiting for its `send_at`: it can no longer be rescheduled."""


class InvalidRequest(SendError):
    """A value the caller passed is malformed (an idempotency key, a page token)."""


class InvalidField(SendError):
    """A field of the body is well-formed but not acceptable here (a link to a host the
    tenant does not allow, a locale no template has): answered like a validation error."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class Gone(SendError):
    """It existed and can no longer be used (an invite expired or revoked)."""


class TooManyAttempts(SendError):
    """Refused after too many failed tries (an invite's wrong tokens)."""


class NotConfigured(SendError):
    """The operator has not configured what this request needs (e.g. INVITE_TOKEN_SECRET)."""


class InvalidIdempotencyKey(InvalidRequest):
    """The `Idempotency-Key` is not 1-256 printable characters."""


class Unavailable(SendError):
    """Temporal could not answer (a read, a list, a cancel): retry later."""


class NotConfirmed(Unavailable):
    """No worker answered a change (an invite's accept or revoke) in time: it was neither
    refused nor confirmed, and may still be applied when a worker runs."""


class NotRecorded(Unavailable):
    """Temporal could not durably record a new send: nothing was accepted, retry later."""
