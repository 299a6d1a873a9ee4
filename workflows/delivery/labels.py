"""What the Web UI shows of a send: a one-line summary per attempt, the current details.

Built from statuses, error types and HTTP statuses only: a provider's message can quote a
recipient, and these labels are shown in clear to anyone who can open the workflow. Neither
is a command, so changing them never breaks a running execution.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.types import AttemptRecord, EmailError, EmailStatusResult


def duration(delay: timedelta) -> str:
    """`2 s`, `0.5 s`, `5 min`, `1 h`: short enough for the Web UI's one-line summaries."""
    seconds = delay.total_seconds()
    if seconds < 60:
        return f"{seconds:.3g} s"
    if seconds < 3600:
        return f"{seconds / 60:.3g} min"
    return f"{seconds / 3600:.3g} h"


def attempt_summary(attempt: int, previous: AttemptRecord | None) -> str:
    """The label of one attempt: `attempt 3 · after 429 from resend, waited 2 s` (the
    provider's status code: HTTP for Resend, the SMTP reply for a relay); `after HTTP 429`
    when the failed attempt did not say which provider answered."""
    if previous is None:
        return f"attempt {attempt}"
    if previous.http_status:
        cause = f"{'' if previous.provider else 'HTTP '}{previous.http_status}"
    elif previous.outcome == "timeout":
        cause = "a timeout"
    else:
        cause = previous.error_type or "an error"
    if previous.provider:
        cause += f" from {previous.provider}"
    waited = timedelta(seconds=previous.retry_in_seconds or 0)
    return f"attempt {attempt} · after {cause}, waited {duration(waited)}"


def show_email(state: EmailStatusResult, listening_until: datetime | None) -> None:
    """One email's current details: kind, tenant, status, the last error's type and HTTP
    status (never its message), the transport, the end of the wait for delivery events."""
    details = (
        f"**{state.kind}** · tenant `{state.tenant_id or '-'}` · **{state.status}** "
        f"after {state.attempt_count} attempt(s)"
    )
    last = state.attempts[-1] if state.attempts else None
    if last and last.error_type:
        details += f"; last error `{last.error_type}`"
        if last.http_status:
            details += f" (HTTP {last.http_status})"
    if state.transport:
        details += f" · transport `{state.transport}`"
    if state.failover_from:
        details += f" (moved from `{state.failover_from}`: `{state.failover_reason or '-'}`)"
    if state.call_id:
        details += f" · coalesced call `{state.call_id}`"
    if listening_until is not None:
        details += f" · listening for delivery events until {listening_until:%Y-%m-%d %H:%M} UTC"
    workflow.set_current_details(details)


def show_batch(
    status: str, attempts: int, counts: dict[str, int], error: EmailError | None
) -> None:
    """A batch's current details: the call's status, the items by status, the last error."""
    summary = f"**{status}** after {attempts} attempt(s): " + ", ".join(
        f"{n} {s}" for s, n in counts.items()
    )
    if error:
        summary += f"; last error `{error.type}`"
    workflow.set_current_details(summary)
