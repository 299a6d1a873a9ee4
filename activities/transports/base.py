"""The contract of a transport: send one message under an idempotency key, or fail classified."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from activities.types import BatchItemOutcome, EmailMessage


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


@dataclass
class SentBatch:
    """The provider took a batch call: per email, in request order, its id or a refusal."""

    items: list[BatchItemOutcome]
    http_status: int


class EmailTransport(Protocol):
    """Where an email goes; raises `ProviderFailure` when it cannot be accepted."""

    name: str

    async def send(self, message: EmailMessage, idempotency_key: str) -> SentEmail: ...

    async def send_batch(self, messages: list[EmailMessage], idempotency_key: str) -> SentBatch:
        """Up to `MAX_BATCH_EMAILS` emails in one provider call (one rate-limit token);
        an email the provider refuses is reported in its item, not as a failure."""
        ...
