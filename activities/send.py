"""The send activities: one attempt to hand one email, or one batch, to the provider, classified.

Activity names `deliver_email` (kept from before: recorded histories and running workers
schedule it by that name) and `deliver_email_batch` (up to 100 emails in one provider call).
Every attempt of one send carries the same idempotency key (see
`activities.delivery_contract`), so a retry after a timeout or a worker crash is
deduplicated by the provider instead of sending twice. The transport is injected: Resend,
the local outbox, or a fake in tests.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from activities import errors
from activities.transports.base import EmailTransport, ProviderFailure
from activities.types import (
    AttemptFailureDetails,
    BatchAttemptInput,
    BatchAttemptResult,
    SendAttemptInput,
    SendAttemptResult,
)


class SendActivities:
    """Provider-facing activities; the transport is injected (tests pass fakes or a fake URL)."""

    def __init__(self, transport: EmailTransport) -> None:
        self._transport = transport

    def _record_attempt(self, outcome: str, duration_ms: float) -> None:
        # Exported by the worker's runtime (Prometheus on WORKER_METRICS_PORT).
        meter = activity.metric_meter()
        labels = {"outcome": outcome, "transport": self._transport.name}
        meter.create_counter("email_send_attempts", "Provider send attempts", "{attempt}").add(
            1, labels
        )
        meter.create_histogram(
            "email_provider_latency", "Provider answer time of one attempt", "ms"
        ).record(round(duration_ms), labels)

    @activity.defn(name="deliver_email")
    async def send_email(self, data: SendAttemptInput) -> SendAttemptResult:
        """Hand one email to the provider once; classify a failure as transient or permanent."""
        started_at = datetime.now(UTC).isoformat()
        started = time.monotonic()
        try:
            sent = await self._transport.send(data.message, data.idempotency_key)
        except ProviderFailure as failure:
            raise self._failed(failure, data.attempt, started_at, started) from None
        duration_ms = (time.monotonic() - started) * 1000
        self._record_attempt("accepted", duration_ms)
        activity.logger.info(
            "send attempt %d accepted by %s in %.0f ms",
            data.attempt,
            self._transport.name,
            duration_ms,
        )
        return SendAttemptResult(
            provider_message_id=sent.provider_message_id,
            http_status=sent.http_status,
            transport=self._transport.name,
            started_at=started_at,
            duration_ms=round(duration_ms, 1),
        )

    @activity.defn(name="deliver_email_batch")
    async def send_batch(self, data: BatchAttemptInput) -> BatchAttemptResult:
        """Hand up to 100 emails to the provider in one call; a failure of the call is
        classified as a single send's is, an email the provider refuses is in its item."""
        started_at = datetime.now(UTC).isoformat()
        started = time.monotonic()
        try:
            sent = await self._transport.send_batch(data.messages, data.idempotency_key)
        except ProviderFailure as failure:
            raise self._failed(failure, data.attempt, started_at, started) from None
        duration_ms = (time.monotonic() - started) * 1000
        self._record_attempt("accepted", duration_ms)
        refused = sum(1 for item in sent.items if item.refusal is not None)
        activity.logger.info(
            "batch attempt %d: %d of %d emails accepted by %s in %.0f ms",
            data.attempt,
            len(sent.items) - refused,
            len(sent.items),
            self._transport.name,
            duration_ms,
        )
        return BatchAttemptResult(
            items=sent.items,
            http_status=sent.http_status,
            transport=self._transport.name,
            started_at=started_at,
            duration_ms=round(duration_ms, 1),
        )

    def _failed(
        self, failure: ProviderFailure, attempt: int, started_at: str, started: float
    ) -> ApplicationError:
        """The attempt's failure as the workflow reads it: typed, permanent or not, in history."""
        permanent = failure.error_type in errors.PERMANENT_ERRORS
        duration_ms = (time.monotonic() - started) * 1000
        self._record_attempt(failure.error_type, duration_ms)
        # The provider's message can quote a recipient: it goes only into the
        # (encrypted) history, the log line keeps the type and status.
        activity.logger.warning(
            "send attempt %d failed: %s (HTTP %s)",
            attempt,
            failure.error_type,
            failure.http_status or "-",
        )
        return ApplicationError(
            failure.message,
            AttemptFailureDetails(
                http_status=failure.http_status,
                provider_error=failure.provider_error,
                started_at=started_at,
                duration_ms=round(duration_ms, 1),
                retry_after_seconds=failure.retry_after_seconds,
            ),
            type=failure.error_type,
            non_retryable=permanent,
            # Transient provider trouble is expected: our own warning above is enough,
            # the SDK need not log a stack trace or count it as a task failure.
            category=ApplicationErrorCategory.UNSPECIFIED
            if permanent
            else ApplicationErrorCategory.BENIGN,
        )
