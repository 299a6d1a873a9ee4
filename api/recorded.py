"""What the server knows of a send without a worker: its recorded input (the first event of
its run's history), its search attributes and times. Reads answer from it, marked not
live, when no worker answers in time; `read_input` answers from it always.

Another tenant's send is `NotFound`: its input (the tenant it names) is decoded, never
returned.
"""

from __future__ import annotations

import dataclasses

from temporalio.client import (
    Client,
    WorkflowExecution,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
)

from activities import errors
from activities.delivery_contract import SendKind
from api.accept import ACCEPTED_AT_MEMO, SendInput
from api.errors import NotFound
from api.idempotency import owned_batch_item, owned_workflow_id
from api.temporal_errors import NO_SUCH_EMAIL, RPC_TIMEOUT, temporal_errors
from api.tenants import Caller
from workflows.batch_types import BatchItemInput, BatchItemState, BatchStatusResult, SendBatchInput
from workflows.ids import public_id_for
from workflows.invite_batch_types import InviteBatchInput
from workflows.search_attributes import EMAIL_KIND, EMAIL_STATUS, PROVIDER_MESSAGE_ID, TENANT_ID
from workflows.status import SendStatus
from workflows.types import EmailError, EmailStatusResult, InviteInput, SendEmailInput

# The input type of each workflow type, to decode a send's recorded input.
INPUT_TYPES: dict[str, type[SendInput]] = {
    t.WORKFLOW: t for t in (SendEmailInput, InviteInput, SendBatchInput, InviteBatchInput)
}
# What a send was asked to send: a single send's input, or a batch item's.
RecordedSend = SendEmailInput | InviteInput | BatchItemInput
# Where a send can stand while its workflow runs; an execution that ended (terminated by
# an operator or a Temporal limit, timed out) in one of these never finished its send.
UNFINISHED = frozenset(
    {SendStatus.SCHEDULED, SendStatus.QUEUED, SendStatus.SENDING, SendStatus.RETRYING}
)


def owned_workflow(email_id: str, caller: Caller) -> str:
    """The workflow id of a single send the caller may see; `NotFound` otherwise."""
    workflow_id = owned_workflow_id(email_id, caller)
    if workflow_id is None:
        raise NotFound(NO_SUCH_EMAIL)
    return workflow_id


async def recorded_input(
    client: Client, workflow_id: str, run_id: str | None = None
) -> SendInput | None:
    """The decoded input of a run's start event (None: not a send's)."""
    events = client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history_events(
        page_size=1, rpc_timeout=RPC_TIMEOUT
    )
    async for event in events:
        started = event.workflow_execution_started_event_attributes
        input_type = INPUT_TYPES.get(started.workflow_type.name)
        if input_type is None:
            return None
        [data] = await client.data_converter.decode(started.input.payloads, [input_type])
        return data if isinstance(data, input_type) else None
    return None


async def read_input(client: Client, email_id: str, caller: Caller) -> RecordedSend:
    """What a send was asked to send: its input (its message, for a caller-composed email),
    or a batch item's part of its batch's input. No worker needs to answer."""
    item = owned_batch_item(email_id, caller)
    workflow_id = item[0] if item is not None else owned_workflow(email_id, caller)
    with temporal_errors():
        data = await recorded_input(client, workflow_id)
    if data is None or not caller.sees(data.tenant_id):
        raise NotFound(NO_SUCH_EMAIL)
    if isinstance(data, SendBatchInput):
        if item is None or data.kind != item[1] or item[2] >= len(data.items):
            raise NotFound(NO_SUCH_EMAIL)
        return data.items[item[2]]
    if item is not None:
        raise NotFound(NO_SUCH_EMAIL)
    return data


def _known(description: WorkflowExecution) -> tuple[SendStatus, str]:
    """The status the server knows and the time it last changed."""
    status = description.typed_search_attributes.get(EMAIL_STATUS)
    started = description.start_time.isoformat()
    updated = description.close_time.isoformat() if description.close_time else started
    return (SendStatus(status) if status else SendStatus.QUEUED), updated


async def known_state(workflow_id: str, description: WorkflowExecution) -> EmailStatusResult:
    """A send's state as the server knows it without a worker: search attributes and times."""
    attributes = description.typed_search_attributes
    kind = attributes.get(EMAIL_KIND)
    status, updated = _known(description)
    accepted_at = await description.memo_value(ACCEPTED_AT_MEMO, None)
    return EmailStatusResult(
        id=public_id_for(workflow_id) or workflow_id,
        kind=SendKind(kind) if kind else _kind_of(workflow_id),
        status=status,
        created_at=str(accepted_at or description.start_time.isoformat()),
        updated_at=updated,
        provider_message_id=attributes.get(PROVIDER_MESSAGE_ID),
        tenant_id=attributes.get(TENANT_ID),
    )


async def known_batch(
    client: Client, description: WorkflowExecutionDescription
) -> BatchStatusResult | None:
    """A batch as the server knows it without a worker: the state its latest run started
    from (carried by a continue-as-new), else its recorded items, with the status and
    times the server holds. None if the run's input is not a batch."""
    data = await recorded_input(client, description.id, description.run_id)
    if not isinstance(data, SendBatchInput):
        return None
    status, updated = _known(description)
    if data.carry is not None:
        return dataclasses.replace(data.carry.state, status=status, updated_at=updated)
    accepted_at = await description.memo_value(ACCEPTED_AT_MEMO, None)
    return BatchStatusResult(
        id=data.batch_id,
        kind=data.kind,
        status=status,
        created_at=str(data.accepted_at or accepted_at or description.start_time.isoformat()),
        updated_at=updated,
        # An item stands where its batch's call does until a worker says otherwise.
        items=[
            BatchItemState(id=i.email_id, status=status, updated_at=updated) for i in data.items
        ],
        tenant_id=data.tenant_id,
    )


def _kind_of(workflow_id: str) -> SendKind:
    return SendKind.INVITE if workflow_id.startswith("invite-") else SendKind.EMAIL


def ended_early(
    state: EmailStatusResult, execution: WorkflowExecutionStatus | None, *, live: bool = True
) -> EmailStatusResult:
    """The honest status of a send whose workflow was ended from outside before it finished.

    Undetermined unless the provider provably never had it: still scheduled, or (from the
    workflow's own state) no attempt with an unknown outcome and none in flight."""
    if execution == WorkflowExecutionStatus.RUNNING or state.status not in UNFINISHED:
        return state
    name = execution.name.lower() if execution else "ended"
    maybe_sent = state.status != SendStatus.SCHEDULED and (
        not live
        or state.provider_may_have_accepted
        or state.status == SendStatus.SENDING
        or any(a.error_type not in errors.NOT_ACCEPTED for a in state.attempts)
    )
    if maybe_sent:
        status = SendStatus.UNDETERMINED
        message = (
            f"the send's workflow was {name} before it finished; an attempt may have reached "
            "the provider. Resubmitting it under a new Idempotency-Key may send it twice."
        )
    else:
        status = SendStatus.FAILED
        message = f"the send's workflow was {name} before any attempt reached the provider"
    return dataclasses.replace(
        state, status=status, last_error=EmailError(f"Workflow{name.title()}", message)
    )
