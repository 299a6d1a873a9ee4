"""Changes to a send that has not gone out: cancel it, reschedule it.

Each is an update of the send's workflow, scoped to the caller (another tenant's send does
not change, nor reveal itself). With no worker to answer a cancel within `CANCEL_WAIT`,
the cancel is recorded as a signal (a durable request) that the workflow applies when it
next runs, if it still can.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from api.errors import Conflict, NotCancellable, NotReschedulable
from api.idempotency import owned_batch_item
from api.reads import check_tenant, read_send, read_workflow
from api.recorded import UNFINISHED, owned_workflow
from api.temporal_errors import CANCEL_WAIT, RPC_TIMEOUT, temporal_errors
from api.tenants import Caller
from workflows.search_attributes import EMAIL_STATUS
from workflows.status import SendStatus
from workflows.types import (
    CANCEL_REQUEST_SIGNAL,
    CANCEL_UPDATE,
    RESCHEDULE_UPDATE,
    CancelInput,
    CancelResult,
    RescheduleInput,
    RescheduleResult,
)

log = logging.getLogger("durable_mail.api")


@dataclass(frozen=True)
class CancelOutcome:
    """What a cancel did: applied (`cancelled`), or only requested."""

    status: SendStatus
    # True when no worker answered at once: the cancel is recorded and takes effect when the
    # send's workflow next runs, if the email has not gone out by then.
    requested: bool = False


@dataclass(frozen=True)
class _Change:
    """One kind of change: its update, how long to wait, and how a refusal reads."""

    update: str
    refused: type[Conflict]
    verb: str
    done: str
    wait: timedelta
    batch_item: str


CANCEL = _Change(
    CANCEL_UPDATE,
    NotCancellable,
    "cancel",
    "cancelled",
    CANCEL_WAIT,
    "a batch's emails go out in one call and cannot be cancelled one by one",
)
RESCHEDULE = _Change(
    RESCHEDULE_UPDATE,
    NotReschedulable,
    "reschedule",
    "rescheduled",
    RPC_TIMEOUT,
    "a batch's emails are not scheduled",
)


async def cancel_send(client: Client, email_id: str, caller: Caller) -> CancelOutcome:
    """Cancel a send that has not gone out; `NotCancellable` (with the status) once it may have.

    With no worker to answer within `CANCEL_WAIT`, the cancel is recorded as a signal (a
    durable request) that the workflow applies when it next runs, if it still can."""
    result: CancelResult | CancelOutcome = await _change(
        client, email_id, caller, CANCEL, CancelInput(), CancelResult
    )
    return result if isinstance(result, CancelOutcome) else CancelOutcome(result.status)


async def reschedule_send(
    client: Client, email_id: str, send_at: datetime, caller: Caller
) -> RescheduleResult:
    """Move a scheduled send to `send_at`; `NotReschedulable` once it is due, sent or cancelled."""
    change = RescheduleInput(send_at=send_at.isoformat())
    result = await _change(client, email_id, caller, RESCHEDULE, change, RescheduleResult)
    assert isinstance(result, RescheduleResult)  # only a cancel is ever merely requested
    return result


async def _change(
    client: Client, email_id: str, caller: Caller, change: _Change, arg: Any, result_type: type[Any]
) -> Any:
    """The update's result, a `CancelOutcome` if only requested, or `change.refused`."""
    if owned_batch_item(email_id, caller) is not None:
        send = await read_send(client, email_id, caller)  # NotFound for no such item
        raise change.refused(f"email is {send.state.status}; {change.batch_item}")
    workflow_id = owned_workflow(email_id, caller)
    handle = client.get_workflow_handle(workflow_id)
    with temporal_errors():
        if not caller.operator:
            # Before the update: another tenant's send must not change, nor reveal itself.
            check_tenant(await handle.describe(rpc_timeout=RPC_TIMEOUT), caller)
        try:
            return await handle.execute_update(
                change.update, arg, result_type=result_type, rpc_timeout=change.wait
            )
        except WorkflowUpdateFailedError as err:
            cause = err.cause
            detail = (
                cause.message if isinstance(cause, ApplicationError) else f"cannot {change.verb}"
            )
            raise change.refused(detail) from None
        except WorkflowUpdateRPCTimeoutOrCancelledError:
            if change is not CANCEL:
                raise
            return await _request_cancel(handle)
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise
    # Not found (NotFound from the read), or already closed: the status read tells which.
    record = await read_workflow(client, workflow_id, caller)
    raise change.refused(f"email is {record.state.status}; it can no longer be {change.done}")


async def _request_cancel(handle: WorkflowHandle[Any, Any]) -> CancelOutcome:
    """No worker answered the update: record the cancel as a signal, unless the server
    already knows the send is past cancelling."""
    description = await handle.describe(rpc_timeout=RPC_TIMEOUT)
    known = description.typed_search_attributes.get(EMAIL_STATUS)
    status = SendStatus(known) if known else SendStatus.QUEUED
    if description.status != WorkflowExecutionStatus.RUNNING or status not in UNFINISHED:
        raise NotCancellable(f"email is {status}; it can no longer be cancelled")
    await handle.signal(CANCEL_REQUEST_SIGNAL, CancelInput(), rpc_timeout=RPC_TIMEOUT)
    log.info("cancel of %s requested (no worker answered)", handle.id)
    return CancelOutcome(status, requested=True)
