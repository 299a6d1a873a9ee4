"""Reads of a send's or a batch's status, scoped to the caller.

From the result once closed, else from the workflow's query; when no worker answers within
`QUERY_TIMEOUT`, from what the server knows (`api.recorded`), marked not live. A send of
another tenant is `NotFound`, exactly like a send that does not exist (no existence
oracle); a send's tenant is its `TenantId` search attribute, set with the start.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any

from temporalio.client import (
    Client,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowQueryRejectedError,
)
from temporalio.service import RPCError

from activities.coalesce_types import CALL_STATE_QUERY, coalescer_of
from api.errors import NotFound, Unavailable
from api.idempotency import owned_batch_item, owned_batch_workflow_id
from api.invites import INVITE_WORKFLOWS
from api.recorded import ended_early, known_batch, known_state, owned_workflow
from api.temporal_errors import (
    NO_SUCH_BATCH,
    NO_SUCH_EMAIL,
    QUERY_TIMEOUT,
    RPC_TIMEOUT,
    failed_status,
    temporal_errors,
)
from api.tenants import Caller
from workflows.batch_types import BATCH_STATUS_QUERY, BatchStatusResult, SendBatchInput, item_status
from workflows.coalesce.types import CallState
from workflows.invite_batch_types import InviteBatchInput
from workflows.search_attributes import TENANT_ID
from workflows.status import SendStatus
from workflows.types import EmailStatusResult, InviteState

log = logging.getLogger("durable_mail.api")
# What a query can fail with when no worker answers it in time (or none can).
NOT_ANSWERED = (RPCError, WorkflowQueryFailedError, WorkflowQueryRejectedError)
# The workflows a batch id names: a batch of emails, a batch of invites (1.3).
BATCH_WORKFLOWS = frozenset({SendBatchInput.WORKFLOW, InviteBatchInput.WORKFLOW})


@dataclass(frozen=True)
class SendRecord:
    """A send's status and the workflow that holds it."""

    workflow_id: str
    state: EmailStatusResult
    # False when no worker answered: the state is what the server knows (its search
    # attributes, times and recorded input), without attempts or events.
    live: bool = True


@dataclass(frozen=True)
class BatchRecord:
    """A batch's status (its call and every item) and the workflow that holds it."""

    workflow_id: str
    state: BatchStatusResult
    live: bool = True


def check_tenant(description: WorkflowExecutionDescription, caller: Caller) -> None:
    """Another tenant's send is not found (the same answer as no send at all)."""
    if not caller.sees(description.typed_search_attributes.get(TENANT_ID)):
        raise NotFound(NO_SUCH_EMAIL)


async def read_send(client: Client, email_id: str, caller: Caller) -> SendRecord:
    """A send's status: from the result once closed, else from the `status` query. A batch
    item's comes from its batch's status."""
    if (item := owned_batch_item(email_id, caller)) is not None:
        workflow_id, kind, index = item
        batch = await _read_batch(client, workflow_id, NO_SUCH_EMAIL, caller)
        if batch.state.kind != kind or index >= len(batch.state.items):
            raise NotFound(NO_SUCH_EMAIL)
        return SendRecord(workflow_id, item_status(batch.state, index), batch.live)
    return await read_workflow(client, owned_workflow(email_id, caller), caller)


async def read_batch(client: Client, batch_id: str, caller: Caller) -> BatchRecord:
    """A batch's status: its provider call and every item."""
    workflow_id = owned_batch_workflow_id(batch_id, caller)
    if workflow_id is None:
        raise NotFound(NO_SUCH_BATCH)
    return await _read_batch(client, workflow_id, NO_SUCH_BATCH, caller)


async def _read_batch(
    client: Client, workflow_id: str, not_found: str, caller: Caller
) -> BatchRecord:
    handle = client.get_workflow_handle(workflow_id, result_type=BatchStatusResult)
    try:
        with temporal_errors():
            description = await handle.describe(rpc_timeout=RPC_TIMEOUT)
            if description.workflow_type not in BATCH_WORKFLOWS:
                raise NotFound(not_found)
            check_tenant(description, caller)
            closed = await _closed_result(handle, description, BatchStatusResult)
            if closed is not None:
                return BatchRecord(workflow_id, closed)
            try:
                state: BatchStatusResult = await handle.query(
                    BATCH_STATUS_QUERY, result_type=BatchStatusResult, rpc_timeout=QUERY_TIMEOUT
                )
            except NOT_ANSWERED as err:
                log.info("status of %s not live: %s", workflow_id, type(err).__name__)
                known = await known_batch(client, description)
                if known is None:
                    raise Unavailable("the batch's start event holds no batch") from None
                return BatchRecord(workflow_id, known, live=False)
            return BatchRecord(workflow_id, state)
    except NotFound:
        raise NotFound(not_found) from None


async def _closed_result(
    handle: WorkflowHandle[Any, Any],
    description: WorkflowExecutionDescription,
    status_type: type[Any],
) -> Any:
    """A closed workflow's status: its result, or a failed one's recorded status; None
    while it runs (or if it ended without one)."""
    if description.status == WorkflowExecutionStatus.COMPLETED:
        return await handle.result(rpc_timeout=RPC_TIMEOUT)
    if description.status == WorkflowExecutionStatus.FAILED:
        return await failed_status(handle.result(rpc_timeout=RPC_TIMEOUT), status_type)
    return None


async def read_workflow(client: Client, workflow_id: str, caller: Caller) -> SendRecord:
    """A single send's status: from the result once closed, else from the `status` query,
    else (no worker answered within `QUERY_TIMEOUT`) from what the server knows, not live."""
    handle = client.get_workflow_handle(workflow_id, result_type=EmailStatusResult)
    with temporal_errors():
        description = await handle.describe(rpc_timeout=RPC_TIMEOUT)
        check_tenant(description, caller)
        if description.workflow_type in INVITE_WORKFLOWS and (
            description.status == WorkflowExecutionStatus.COMPLETED
        ):
            # An invite's result is the invite; its invitation is the email.
            invite: InviteState = await client.get_workflow_handle(
                workflow_id, result_type=InviteState
            ).result(rpc_timeout=RPC_TIMEOUT)
            if invite.invitation is None:
                raise Unavailable("invite without an invitation status")
            return SendRecord(workflow_id, invite.invitation)
        closed: EmailStatusResult | None = await _closed_result(
            handle, description, EmailStatusResult
        )
        if closed is not None:
            return SendRecord(workflow_id, closed)
        try:
            state: EmailStatusResult = await handle.query(
                "status", result_type=EmailStatusResult, rpc_timeout=QUERY_TIMEOUT
            )
        except NOT_ANSWERED as err:
            # No worker answered in time (or it could not): say what the server knows.
            log.info("status of %s not live: %s", workflow_id, type(err).__name__)
            known = await known_state(workflow_id, description)
            return SendRecord(
                workflow_id, ended_early(known, description.status, live=False), live=False
            )
        state = await with_call_progress(client, state)
        return SendRecord(workflow_id, ended_early(state, description.status))


async def with_call_progress(client: Client, state: EmailStatusResult) -> EmailStatusResult:
    """A coalesced email whose call is still being made learns its outcome only when the
    call ends: until then its status and attempts are the call's, read from the coalescer
    (`retrying` after a 429, each attempt so far). The call's attempts never quote the
    provider (they are every email's of the call, whatever its tenant)."""
    if state.status != SendStatus.SENDING or not state.call_id:
        return state
    handle = client.get_workflow_handle(coalescer_of(state.call_id))
    try:
        call: CallState | None = await handle.query(
            CALL_STATE_QUERY, state.call_id, result_type=CallState, rpc_timeout=QUERY_TIMEOUT
        )
    except NOT_ANSWERED as err:
        log.info("call %s not read: %s", state.call_id, type(err).__name__)
        return state
    if call is None:
        return state
    return replace(
        state,
        status=call.status,
        attempts=list(call.attempts),
        attempt_count=call.attempt_count,
        attempts_omitted=call.attempts_omitted,
        provider_may_have_accepted=state.provider_may_have_accepted
        or call.provider_may_have_accepted,
    )
