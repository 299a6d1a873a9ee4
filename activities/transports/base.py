"""The contract of a transport: send one message (or a batch) under an idempotency key, or
fail classified; and say what it can do (`TransportCapabilities`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Protocol

from activities.types import BatchItemOutcome, EmailMessage, Failover


@dataclass(frozen=True)
class TransportCapabilities:
    """What a transport can do; the engine decides from this, never from a transport's name.

    - `reports_delivery_events`: the provider tells later whether each email was delivered,
      bounced... (webhooks); without them a send is over once the provider took it.
    - `deduplicates_by_key`: a retry under the same idempotency key cannot send twice (Resend
      keeps a key 24 h). Without it, a retry after an unknown outcome could deliver twice.
    - `max_batch`: the most emails one `send_batch` call carries.
    - `max_request_bytes`: the largest email the provider takes, as its request body (JSON,
      attachments base64-encoded).
    - `batch_attachments`: whether a batch call may carry emails with attachments (Resend's
      batch endpoint does not take them: such an email goes as a single send).
    - `sends_mail`: the email leaves this machine; False for the local outbox, which only
      writes it to a directory (the worker warns about it at start).
    - `fails_over`: a single send can move to another provider when this one cannot take
      mail; a batch call cannot (a coalesced call then hands its emails back to go alone).
    """

    reports_delivery_events: bool
    deduplicates_by_key: bool
    max_batch: int
    max_request_bytes: int
    batch_attachments: bool
    sends_mail: bool = True
    fails_over: bool = False


class ProviderFailure(Exception):
    """A classified failure of one send attempt (type from `activities.errors`).

    `message` is our own words (what happened: `HTTP 429 rate_limit_exceeded from the
    provider`, `timed out waiting for the provider (ReadTimeout)`): it becomes the failure's
    message, in clear in history, so it never holds a recipient, subject or token.
    `provider_message` is the provider's own text, which can quote a recipient: it goes only
    into the failure's (encrypted) details. `provider_error`: the provider's error code.
    """

    def __init__(
        self,
        error_type: str,
        message: str,
        *,
        http_status: int | None = None,
        provider_error: str | None = None,
        provider_message: str | None = None,
        retry_after_seconds: float | None = None,
        transport: str | None = None,
        deduplicates_by_key: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.http_status = http_status
        self.provider_error = provider_error
        self.provider_message = provider_message
        self.retry_after_seconds = retry_after_seconds
        # Set by a composed transport (failover): which member failed and whether that one
        # deduplicates a retry by key (None: the transport's own capabilities say).
        self.transport = transport
        self.deduplicates_by_key = deduplicates_by_key
        # Set by the failover transport when this member was tried after another one's
        # not-accepted failure: that provider, and its error type.
        self.failover_from: str | None = None
        self.failover_reason: str | None = None


@dataclass
class SentEmail(Failover):
    """The provider accepted the email under this id."""

    provider_message_id: str
    http_status: int
    # Set by a composed transport (failover): the member that sent it, whether that one
    # reports delivery events (and, from `Failover`, the provider it moved from and why).
    transport: str | None = None
    reports_delivery_events: bool | None = None


@dataclass
class SentBatch:
    """The provider took a batch call: per email, in request order, its id or a refusal."""

    items: list[BatchItemOutcome]
    http_status: int
    # Set by a composed transport (failover): the member that took the call (always the
    # first: batches never fail over) and whether that one reports delivery events.
    transport: str | None = None
    reports_delivery_events: bool | None = None


class EmailTransport(Protocol):
    """Where an email goes; raises `ProviderFailure` when it cannot be accepted."""

    name: str  # for logs and metrics only
    capabilities: TransportCapabilities

    async def send(self, message: EmailMessage, idempotency_key: str) -> SentEmail: ...

    async def send_batch(self, messages: list[EmailMessage], idempotency_key: str) -> SentBatch:
        """Up to `capabilities.max_batch` emails in one provider call (one rate-limit token);
        an email the provider refuses is reported in its item, not as a failure."""
        ...


# Set by the send activity: called by a transport that cannot deduplicate a retry (SMTP)
# right before the message leaves (DATA), with the transport's name. If the attempt then
# dies without an answer (worker lost, attempt timeout), the engine learns from this that
# a retry could send it twice.
_ON_UNDEDUPLICATED_SEND: ContextVar[Callable[[str], None] | None] = ContextVar(
    "on_undeduplicated_send", default=None
)


@contextmanager
def on_undeduplicated_send(hook: Callable[[str], None]) -> Iterator[None]:
    """Within this block, `sending_without_dedupe` calls `hook`."""
    token = _ON_UNDEDUPLICATED_SEND.set(hook)
    try:
        yield
    finally:
        _ON_UNDEDUPLICATED_SEND.reset(token)


def sending_without_dedupe(transport: str) -> None:
    """A transport without key dedupe says its message is about to leave."""
    hook = _ON_UNDEDUPLICATED_SEND.get()
    if hook is not None:
        hook(transport)
