"""The delivery loop shared by every email workflow: attempts, backoff, status.

Temporal's own activity retries keep only the last failure in history. To put every
attempt on the record, each attempt is its own single-try activity and the workflow owns
the retry schedule: each failed attempt is an `ActivityTaskFailed` event in history and an
`AttemptRecord` in the status.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, TimeoutError, TimeoutType

with workflow.unsafe.imports_passed_through():
    from activities import errors
    from activities.email import EmailActivities
    from activities.types import DeliverEmailInput, EmailMessage
    from workflows.shared import (
        AttemptRecord,
        DeliveryPolicy,
        EmailError,
        EmailStatusResult,
    )

# One try per activity: the workflow decides about the next one (see module docstring).
SINGLE_ATTEMPT = RetryPolicy(maximum_attempts=1)
# A daily quota resets within 24 h; probe again hourly while the window lasts.
DAILY_QUOTA_RETRY = timedelta(hours=1)
DELIVERY_FAILED = "EmailDeliveryFailed"


def _iso(moment: datetime) -> str:
    return moment.isoformat()


class Delivery:
    """State and retry loop of one email; lives inside a workflow instance."""

    def __init__(self, email_id: str, kind: str, policy: DeliveryPolicy) -> None:
        now = _iso(workflow.now())
        self.policy = policy
        self.state = EmailStatusResult(
            id=email_id, kind=kind, status="queued", created_at=now, updated_at=now
        )

    def set_status(self, status: str) -> None:
        self.state.status = status
        self.state.updated_at = _iso(workflow.now())
        last = self.state.attempts[-1] if self.state.attempts else None
        summary = f"**{status}** after {len(self.state.attempts)} attempt(s)"
        if last and last.error_type:
            summary += f"; last error `{last.error_type}`: {last.error_message}"
        workflow.set_current_details(summary)

    async def send(self, message: EmailMessage, idempotency_key: str) -> EmailStatusResult:
        """Send until accepted, a permanent error, or the end of the send window."""
        policy = self.policy
        deadline = workflow.now() + timedelta(seconds=policy.window_seconds)
        backoff = timedelta(seconds=policy.initial_backoff_seconds)
        attempt = 0
        while True:
            attempt += 1
            self.set_status("sending")
            scheduled = workflow.now()
            try:
                result = await workflow.execute_activity_method(
                    EmailActivities.deliver_email,
                    DeliverEmailInput(
                        message=message, idempotency_key=idempotency_key, attempt=attempt
                    ),
                    task_queue=policy.send_task_queue,
                    start_to_close_timeout=timedelta(seconds=policy.attempt_timeout_seconds),
                    # Never send after the window: past it Resend's 24 h idempotency
                    # window could no longer deduplicate a late attempt.
                    schedule_to_close_timeout=deadline - scheduled,
                    retry_policy=SINGLE_ATTEMPT,
                )
            except ActivityError as err:
                record, permanent, retry_after = self._failed_attempt(attempt, scheduled, err)
                self.state.attempts.append(record)
                error = EmailError(record.error_type or "", record.error_message or "")
                self.state.last_error = error
                delay = retry_after if retry_after is not None else backoff
                if permanent or workflow.now() + delay >= deadline:
                    if not permanent:
                        error.message += " (send window exhausted)"
                    self.set_status("failed")
                    workflow.logger.warning("email %s failed: %s", self.state.id, record.error_type)
                    raise ApplicationError(
                        f"email not delivered: {error.message}",
                        self.state,
                        type=DELIVERY_FAILED,
                        non_retryable=True,
                    ) from None
                record.retry_in_seconds = delay.total_seconds()
                self.set_status("retrying")
                await workflow.sleep(delay)
                backoff = min(backoff * 2, timedelta(seconds=policy.max_backoff_seconds))
                continue
            now = _iso(workflow.now())
            self.state.attempts.append(
                AttemptRecord(
                    attempt=attempt,
                    scheduled_at=_iso(scheduled),
                    started_at=result.started_at,
                    finished_at=now,
                    outcome="accepted",
                    http_status=result.http_status,
                    provider_message_id=result.provider_message_id,
                )
            )
            self.state.provider_message_id = result.provider_message_id
            self.state.transport = result.transport
            self.state.sent_at = now
            self.state.last_error = None
            self.set_status("sent")
            return self.state

    def _failed_attempt(
        self, attempt: int, scheduled: datetime, err: ActivityError
    ) -> tuple[AttemptRecord, bool, timedelta | None]:
        record = AttemptRecord(
            attempt=attempt,
            scheduled_at=_iso(scheduled),
            finished_at=_iso(workflow.now()),
            outcome="transient_error",
        )
        cause = err.cause
        if isinstance(cause, TimeoutError):
            record.outcome = "timeout"
            record.error_type = (
                f"Timeout{cause.type.name.title().replace('_', '') if cause.type else ''}"
            )
            record.error_message = "attempt timed out; the retry reuses the idempotency key"
            # Past schedule-to-close the send window is over.
            return record, cause.type == TimeoutType.SCHEDULE_TO_CLOSE, None
        if not isinstance(cause, ApplicationError):
            record.error_type = type(cause).__name__ if cause else "ActivityError"
            record.error_message = str(cause or err)
            return record, False, None
        details: dict[str, Any] = cause.details[0] if cause.details else {}
        record.error_type = cause.type or "ApplicationError"
        record.error_message = cause.message
        record.http_status = details.get("http_status")
        record.started_at = details.get("started_at")
        permanent = cause.non_retryable or record.error_type in errors.PERMANENT_ERRORS
        record.outcome = "permanent_error" if permanent else "transient_error"
        retry_after: timedelta | None = None
        if details.get("retry_after_seconds") is not None:
            retry_after = timedelta(seconds=max(float(details["retry_after_seconds"]), 1.0))
        elif record.error_type == errors.DAILY_QUOTA_EXCEEDED:
            retry_after = DAILY_QUOTA_RETRY
        return record, permanent, retry_after
