"""What one attempt was, as the audit trail records it, and what it means for the next.

Decided from what the transport said of its failure (`AttemptFailureDetails`): whether the
provider provably did not take the message(s) (`not_accepted`) and whether a retry could
duplicate it (`retry_may_duplicate`); never from a transport's or an error type's name. A
timeout or a failure without details leaves the outcome unknown.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.converter import value_to_type
from temporalio.exceptions import ActivityError, ApplicationError, TimeoutError, TimeoutType

with workflow.unsafe.imports_passed_through():
    from activities import errors
    from activities.types import AttemptFailureDetails, AttemptProgress
    from workflows.delivery.history import iso
    from workflows.types import AttemptRecord

# A daily quota resets within 24 h; probe again hourly while the window lasts.
DAILY_QUOTA_RETRY = timedelta(hours=1)


@dataclass
class FailedAttempt:
    """A failed attempt: its record, whether another attempt may follow, the provider's
    Retry-After, and whether the provider may have taken the message(s) all the same."""

    record: AttemptRecord
    final: bool
    retry_after: timedelta | None
    may_have_accepted: bool


def accepted_record(
    attempt: int, scheduled: datetime, started_at: str, http_status: int
) -> AttemptRecord:
    return AttemptRecord(
        attempt=attempt,
        scheduled_at=iso(scheduled),
        started_at=started_at,
        finished_at=iso(workflow.now()),
        outcome="accepted",
        http_status=http_status,
    )


def failure_details(cause: ApplicationError) -> AttemptFailureDetails | None:
    """The typed details the send activity attached to its failure (None if it attached none).

    The failure converter decodes details without a type hint (a dict); the payload
    converter's own rules turn it back into the dataclass, defaults included.
    """
    if not cause.details:
        return None
    try:
        details: AttemptFailureDetails = value_to_type(AttemptFailureDetails, cause.details[0], [])
    except Exception:  # noqa: BLE001 (details of another shape: nothing is proven)
        return None
    return details


def note_taken(taken: list[str], record: AttemptRecord, *, may_have_accepted: bool) -> None:
    """Add the provider an attempt may have reached to `taken` (what a failover is told)."""
    if may_have_accepted and (record.provider or "unknown") not in taken:
        taken.append(record.provider or "unknown")


def failed_attempt(
    attempt: int, scheduled: datetime, err: ActivityError, quote_provider: bool = True
) -> FailedAttempt:
    """Classify a failed attempt (see the module docstring); `quote_provider`: add the
    provider's own words to the record's message."""
    record = AttemptRecord(
        attempt=attempt,
        scheduled_at=iso(scheduled),
        finished_at=iso(workflow.now()),
        outcome="transient_error",
    )
    cause = err.cause
    if isinstance(cause, TimeoutError):
        return _timed_out(record, cause, started=bool(err.started_event_id))
    if not isinstance(cause, ApplicationError):
        record.error_type = type(cause).__name__ if cause else "ActivityError"
        record.error_message = str(cause or err)
        return FailedAttempt(record, final=False, retry_after=None, may_have_accepted=True)
    details = failure_details(cause)
    record.error_type = cause.type or "ApplicationError"
    record.error_message = cause.message
    if quote_provider and details is not None and details.provider_message:
        # The provider's own words, for the owner reading the status (encoded payloads,
        # never a failure message: those are in clear history).
        record.error_message += f" Provider said: {details.provider_message}"
    record.http_status = details.http_status if details else None
    record.started_at = details.started_at if details else None
    if details is not None:
        record.provider = details.transport
        record.failover_from, record.failover_reason = (
            details.failover_from,
            details.failover_reason,
        )
    not_accepted = details is not None and details.not_accepted
    # Outcome unknown and the transport cannot deduplicate a retry: another attempt could
    # send it twice, so there is none.
    duplicate_risk = details is not None and details.retry_may_duplicate and not not_accepted
    final = cause.non_retryable or duplicate_risk
    record.outcome = "permanent_error" if final else "transient_error"
    retry_after: timedelta | None = None
    if details is not None and details.retry_after_seconds is not None:
        retry_after = timedelta(seconds=max(details.retry_after_seconds, 1.0))
    elif record.error_type == errors.DAILY_QUOTA_EXCEEDED:
        retry_after = DAILY_QUOTA_RETRY
    return FailedAttempt(record, final, retry_after, may_have_accepted=not not_accepted)


def _timed_out(record: AttemptRecord, cause: TimeoutError, *, started: bool) -> FailedAttempt:
    record.outcome = "timeout"
    record.error_type = f"Timeout{cause.type.name.title().replace('_', '') if cause.type else ''}"
    record.error_message = "attempt timed out; the retry reuses the idempotency key"
    # Past schedule-to-close the send window is over.
    window_over = cause.type == TimeoutType.SCHEDULE_TO_CLOSE
    if window_over and not started:
        # No worker started it before the window ended: the provider was not called.
        record.outcome = "not_started"
        record.error_type = errors.SEND_WINDOW_CLOSED
        record.error_message = "no worker started the attempt before the send window ended"
        return FailedAttempt(record, final=True, retry_after=None, may_have_accepted=False)
    progress = _progress(cause)
    if progress is not None and progress.retry_may_duplicate:
        # The message was leaving through a transport that cannot deduplicate a retry.
        record.provider = progress.transport
        record.error_message = (
            f"attempt timed out while {progress.transport} was taking the message; "
            "not retried: this transport cannot deduplicate a retry"
        )
        return FailedAttempt(record, final=True, retry_after=None, may_have_accepted=True)
    return FailedAttempt(record, final=window_over, retry_after=None, may_have_accepted=True)


def _progress(cause: TimeoutError) -> AttemptProgress | None:
    """What the attempt's last heartbeat said (`AttemptProgress`), if it sent one."""
    if not cause.last_heartbeat_details:
        return None
    try:
        progress: AttemptProgress = value_to_type(
            AttemptProgress, cause.last_heartbeat_details[0], []
        )
    except Exception:  # noqa: BLE001 (details of another shape: nothing is known)
        return None
    return progress
