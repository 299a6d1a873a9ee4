"""Several providers in order of preference (`PROVIDERS=resend,smtp`), without double sends.

An email moves to the next provider ONLY when the current one provably did not take it:
its failure is `not_accepted` AND says the provider cannot take mail now, whatever the
message (`errors.PROVIDER_CANNOT_TAKE`: no connection, TLS handshake failure, AUTH refused
or a revoked key, a quota, an SMTP 4xx). Never after an ambiguous outcome (a timeout, a
5xx, a connection lost once the request was sent): the provider may have taken it, and the
failure goes back to the engine, which retries the same provider under the same key (or
ends the email `undetermined` where that provider cannot deduplicate). Not on a 429 either:
waiting is the answer, and the transport cannot know how much of the send window is left.
The rule reads the failure's classification, never a provider's name (docs/providers.md).

Across attempts: the activity has no memory, so the engine says which providers may have
taken this email in an earlier attempt (`SendAttemptInput.may_have_been_taken_by`; the send
activity puts it in `earlier_attempts` for the call). Non-empty: no failover at all. Not
given (an engine that does not fill it): failover only on attempt 1.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from activities import errors
from activities.transports.base import (
    EmailTransport,
    ProviderFailure,
    SentBatch,
    SentEmail,
    TransportCapabilities,
)
from activities.types import EmailMessage


@dataclass(frozen=True)
class EarlierAttempts:
    """What the engine told this attempt about the email's earlier ones."""

    attempt: int = 1
    # None: not said (only attempt 1 may fail over); else the providers that may have taken it.
    may_have_been_taken_by: tuple[str, ...] | None = None

    def allow_failover(self) -> bool:
        if self.may_have_been_taken_by is None:
            return self.attempt <= 1
        return not self.may_have_been_taken_by


_EARLIER: ContextVar[EarlierAttempts | None] = ContextVar("earlier_attempts", default=None)


@contextmanager
def earlier_attempts(attempt: int, may_have_been_taken_by: Sequence[str] | None) -> Iterator[None]:
    """Within this block, sends know the email's earlier attempts (set by the send activity)."""
    taken = tuple(may_have_been_taken_by) if may_have_been_taken_by is not None else None
    token = _EARLIER.set(EarlierAttempts(attempt, taken))
    try:
        yield
    finally:
        _EARLIER.reset(token)


def may_fail_over(failure: ProviderFailure) -> bool:
    """The provider provably did not take the email and cannot take mail now."""
    return cannot_take_now(failure.error_type)


def cannot_take_now(error_type: str | None) -> bool:
    """A failure of this type: not taken, and the provider cannot take mail now."""
    return error_type in errors.NOT_ACCEPTED and error_type in errors.PROVIDER_CANNOT_TAKE


def combined_capabilities(members: Sequence[EmailTransport]) -> TransportCapabilities:
    """What the engine may count on whichever member sends a single email (the weakest of
    each); batches go to the first member only, so its batch limits are the batch limits.
    Each result and failure says what its own member does (`SentEmail`, `ProviderFailure`)."""
    caps = [member.capabilities for member in members]
    return TransportCapabilities(
        reports_delivery_events=all(c.reports_delivery_events for c in caps),
        deduplicates_by_key=all(c.deduplicates_by_key for c in caps),
        max_batch=caps[0].max_batch,
        max_request_bytes=min(c.max_request_bytes for c in caps),
        batch_attachments=caps[0].batch_attachments,
        # Any member that only writes locally makes the worker warn (OUTBOX MODE).
        sends_mail=all(c.sends_mail for c in caps),
        fails_over=len(caps) > 1,
    )


class FailoverTransport:
    """The members in order of preference; see the module docstring for when it moves."""

    def __init__(self, members: Sequence[EmailTransport]) -> None:
        if not members:
            raise ValueError("PROVIDERS names no provider")
        names = [member.name for member in members]
        if len(set(names)) != len(names):
            raise ValueError(f"PROVIDERS names a provider twice: {','.join(names)}")
        self.members = list(members)
        self.name = "+".join(names)
        self.capabilities = combined_capabilities(self.members)

    async def send(self, message: EmailMessage, idempotency_key: str) -> SentEmail:
        moved: ProviderFailure | None = None
        moved_from: str | None = None
        for member in self.members:
            try:
                sent = await member.send(message, idempotency_key)
            except ProviderFailure as failure:
                failure = _marked(failure, member)
                if member is self.members[-1] or not self._may_move(failure):
                    if moved is not None:
                        failure.failover_from, failure.failover_reason = (
                            moved_from,
                            moved.error_type,
                        )
                    raise failure from None
                moved, moved_from = failure, member.name
                continue
            sent.transport = member.name
            sent.reports_delivery_events = member.capabilities.reports_delivery_events
            if moved is not None:
                sent.failover_from, sent.failover_reason = moved_from, moved.error_type
            return sent
        raise AssertionError("unreachable: the last member raises or returns")

    async def send_batch(self, messages: list[EmailMessage], idempotency_key: str) -> SentBatch:
        """A batch goes to the first member only: a batch result cannot say which provider
        sent it, so a batch never fails over (the engine sends single emails to fail over)."""
        member = self.members[0]
        try:
            sent = await member.send_batch(messages, idempotency_key)
        except ProviderFailure as failure:
            raise _marked(failure, member) from None
        sent.transport = member.name
        sent.reports_delivery_events = member.capabilities.reports_delivery_events
        return sent

    def _may_move(self, failure: ProviderFailure) -> bool:
        return may_fail_over(failure) and (_EARLIER.get() or EarlierAttempts()).allow_failover()


def _marked(failure: ProviderFailure, member: EmailTransport) -> ProviderFailure:
    """The failure says which member failed and whether that one deduplicates a retry."""
    if failure.transport is None:
        failure.transport = member.name
    if failure.deduplicates_by_key is None:
        failure.deduplicates_by_key = member.capabilities.deduplicates_by_key
    return failure
