"""The contract of a transport: send one message under an idempotency key, or fail classified."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from activities.types import EmailMessage


class ProviderFailure(Exception):
    """A classified failure of one send attempt (type from `activities.errors`)."""

    def __init__(
        self,
        error_type: str,
        message: str,
        *,
        http_status: int | None = None,
        provider_error: str | None = None,
        retry_after_seconds: float | None = None,
    ) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.http_status = http_status
        self.provider_error = provider_error
        self.retry_after_seconds = retry_after_seconds


@dataclass
class SentEmail:
    """The provider accepted the email under this id."""

    provider_message_id: str
    http_status: int


class EmailTransport(Protocol):
    """Where an email goes; raises `ProviderFailure` when it cannot be accepted."""

    name: str

    async def send(self, message: EmailMessage, idempotency_key: str) -> SentEmail: ...
