"""How a provider call the provider did not take ends, and the failures workflows raise.

`failed` only when the provider provably did not take the message(s); `undetermined` when
an attempt's outcome is unknown (timeout, network error, 5xx, 409), or when this run comes
from a reset, which may have discarded attempts. The failure a workflow ends with has a
message in our own words (what ended, after how many attempts, the last error's type, what
happens next), readable in the Web UI's rows; anything the provider said (it can quote a
recipient) stays in the details, which are encoded payloads.
"""

from __future__ import annotations

from typing import Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from workflows.status import SendStatus
    from workflows.types import EmailError

# Failure types (recorded in histories: the strings stay).
SEND_FAILED = "EmailDeliveryFailed"
SEND_UNDETERMINED = "EmailDeliveryUndetermined"
CANCEL_REJECTED = "EmailNotCancellable"
RESCHEDULE_REJECTED = "EmailNotReschedulable"
UNDETERMINED_NOTE = (
    "The provider may have accepted this email: resubmitting it under a new "
    "Idempotency-Key may send it twice."
)
_NEXT = {
    SendStatus.FAILED: "the provider did not take it; resubmitting it is safe",
    SendStatus.UNDETERMINED: (
        "the provider may have taken it; resubmitting it under a new Idempotency-Key "
        "may send it twice"
    ),
}


def is_reset_run() -> bool:
    """A reset run replays a copy of an earlier run's history up to the reset point only:
    whatever that run did after it (attempts included) is unknown here.

    The `Replayer` gives every history the run id of its start event, so replaying a reset
    run sees no reset: this may choose values (a status, a message), never commands."""
    info = workflow.info()
    return info.run_id != info.original_execution_run_id


def unsent_ending(error: EmailError, may_have_accepted: bool, what: str) -> SendStatus:
    """How a `what` ("send", "batch") the provider did not take ends; `error` says why."""
    reset = is_reset_run()
    if not may_have_accepted and not reset:
        return SendStatus.FAILED
    error.message = f"{error.message}. {UNDETERMINED_NOTE}"
    if reset:
        error.message += f" This {what}'s workflow was reset: an earlier run may have sent it."
    return SendStatus.UNDETERMINED


def ending_failure(
    what: str, status: SendStatus, attempts: int, error: EmailError, state: Any
) -> ApplicationError:
    """The failure a send or batch ends with: our words in the message, its state (with
    the provider's text) in the encoded details."""
    reset = " (its workflow was reset: an earlier run may have sent it)" if is_reset_run() else ""
    message = (
        f"{what} {status} after {attempts} attempt(s), last error {error.type}{reset}: "
        f"{_NEXT.get(status, 'see its status')}"
    )
    failure_type = SEND_FAILED if status == SendStatus.FAILED else SEND_UNDETERMINED
    return ApplicationError(message, state, type=failure_type, non_retryable=True)
