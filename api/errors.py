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


class NotCancellable(Conflict):
    """The send may have gone out already, or has ended: it can no longer be cancelled."""


class InvalidRequest(SendError):
    """A value the caller passed is malformed (an idempotency key, a page token)."""


class InvalidField(SendError):
    """A field of the request body is invalid, found only once its send was looked up (a
    `send_at` now in the past, when the request is not a repeat of an accepted one)."""

    def __init__(self, field: str, message: str, value: object) -> None:
        super().__init__(message)
        self.field = field
        self.value = value


class Unavailable(SendError):
    """Temporal could not answer (a read, a list, a cancel): retry later."""


class NotRecorded(Unavailable):
    """Temporal could not durably record a new send: nothing was accepted, retry later."""
