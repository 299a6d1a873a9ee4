"""The send service: what the API asks of Temporal, in domain words.

Start a send once, read its status, list sends, cancel one, route a provider event to it.
Temporal's errors become the domain errors of `api.errors` here; nothing in this module
knows about HTTP (`api.error_handlers` answers them).

Every read, list and cancel is scoped to its `Caller`: a send of another tenant is
`NotFound`, exactly like a send that does not exist (no existence oracle). A send's tenant
is its `TenantId` search attribute, set with the start and never changed.

Reads and cancels answer without a worker: a read that gets no answer from the workflow
within `QUERY_TIMEOUT` answers what the server itself knows (search attributes, times),
marked not live; a cancel that gets no answer within `CANCEL_WAIT` is recorded as a signal
that the workflow applies when it next runs.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import logging
import re
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from temporalio.client import (
    Client,
    WorkflowExecution,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowQueryRejectedError,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.converter import value_to_type
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from activities import errors
from activities.delivery_contract import SendKind
from api.errors import (
    IdempotencyKeyReused,
    InvalidField,
    InvalidRequest,
    NotCancellable,
    NotFound,
    NotRecorded,
    NotReschedulable,
    Unavailable,
)
from api.idempotency import (
    Fingerprint,
    owned_batch_item,
    owned_batch_workflow_id,
    owned_workflow_id,
)
from api.tenants import Caller
from workflows.batch_types import (
    BATCH_STATUS_QUERY,
    BatchItemInput,
    BatchStatusResult,
    SendBatchInput,
    item_status,
)
from workflows.ids import (
    batch_ids,
    batch_item_of,
    public_id_for,
    workflow_id_for,
)
from workflows.invite import Invite
from workflows.policy import task_priority
from workflows.search_attributes import EMAIL_KIND, EMAIL_STATUS, PROVIDER_MESSAGE_ID, TENANT_ID
from workflows.send_batch import SendBatch
from workflows.send_email import SendEmail
from workflows.status import SendStatus
from workflows.types import (
    CANCEL_REQUEST_SIGNAL,
    CANCEL_UPDATE,
    DELIVERY_EVENT_SIGNAL,
    RESCHEDULE_UPDATE,
    CancelInput,
    CancelResult,
    DeliveryEventInput,
    DeliveryPolicy,
    EmailError,
    EmailStatusResult,
    InviteInput,
    InviteState,
    RescheduleInput,
    RescheduleResult,
    SendEmailInput,
)

log = logging.getLogger("durable_mail.api")

RPC_TIMEOUT = timedelta(seconds=5)
# How long a read waits for the workflow's own answer (a worker) before it answers from
# what the server knows; how long a cancel waits before it is recorded as a request.
QUERY_TIMEOUT = timedelta(seconds=1)
CANCEL_WAIT = timedelta(seconds=1)
REQUEST_HASH_MEMO = "request_sha256"
ACCEPTED_AT_MEMO = "accepted_at"
TOKEN_CHECK_BYTES = 8
UNAVAILABLE_CODES = {
    RPCStatusCode.UNAVAILABLE,
    RPCStatusCode.DEADLINE_EXCEEDED,
    RPCStatusCode.CANCELLED,
    RPCStatusCode.RESOURCE_EXHAUSTED,
    RPCStatusCode.UNKNOWN,
}
NO_SUCH_EMAIL = "no email with this id"
NO_SUCH_BATCH = "no batch with this id"
_PROVIDER_ID = re.compile(r"[A-Za-z0-9-]{1,100}")
# Every email workflow type; the filters below are validated enums and ids, never raw text.
BASE_QUERY = (
    "(WorkflowType = 'SendEmail' OR WorkflowType = 'SendInviteEmail' OR WorkflowType = 'Invite')"
)

SendInput = SendEmailInput | InviteInput | SendBatchInput
StatusT = TypeVar("StatusT", EmailStatusResult, BatchStatusResult)
# The input type of each workflow type, to decode a send's recorded input.
INPUT_TYPES: dict[str, type[SendInput]] = {
    "SendEmail": SendEmailInput,
    "SendInviteEmail": InviteInput,
    "SendBatch": SendBatchInput,
}
# What a send was asked to send: a single send's input, or a batch item's.
RecordedSend = SendEmailInput | InviteInput | BatchItemInput


@dataclass(frozen=True)
class StartedSend:
    workflow_id: str
    # True when this request repeats one already accepted (same key, same body).
    replayed: bool


@dataclass(frozen=True)
class SendRecord:
    """A send's status and the workflow that holds it."""

    workflow_id: str
    state: EmailStatusResult
    # False when no worker answered: the state is what the server knows (its search
    # attributes and times), without attempts or events.
    live: bool = True


@dataclass(frozen=True)
class CancelOutcome:
    """What a cancel did: applied (`cancelled`), or only requested."""

    status: SendStatus
    # True when no worker answered at once: the cancel is recorded and takes effect when the
    # send's workflow next runs, if the email has not gone out by then.
    requested: bool = False


@dataclass(frozen=True)
class SendSummary:
    """One send as the visibility store knows it (eventually consistent)."""

    id: str
    workflow_id: str
    kind: SendKind | None
    status: SendStatus | None
    tenant_id: str | None
    provider_message_id: str | None
    started_at: str | None
    closed_at: str | None


@dataclass(frozen=True)
class SendPage:
    items: list[SendSummary]
    next_page_token: str | None


@dataclass(frozen=True)
class BatchRecord:
    """A batch's status (its call and every item) and the workflow that holds it."""

    workflow_id: str
    state: BatchStatusResult


def _workflow_of(data: SendInput) -> tuple[Callable[..., Awaitable[Any]], SendKind]:
    if isinstance(data, InviteInput):
        return Invite.run, SendKind.INVITE
    if isinstance(data, SendBatchInput):
        return SendBatch.run, data.kind
    return SendEmail.run, SendKind.EMAIL


async def start_send(
    client: Client,
    data: SendInput,
    *,
    workflow_id: str,
    fingerprint: Fingerprint,
    task_queue: str,
) -> StartedSend:
    """Start the send's workflow (one send, or one batch) unless this exact request already
    started it.

    REJECT_DUPLICATE keeps a finished send from being started again under the same id
    (USE_EXISTING alone would). A repeat with another fingerprint raises `Conflict`.
    The workflow id derives from the tenant's idempotency key, so a repeat is always of
    the same tenant as `data.tenant_id`. The policy's queue priority is the workflow's too:
    its workflow tasks are ordered as its provider calls are (a tenant's backlog of new
    sends cannot hold another's back). The accept time goes into the input of the email
    and batch workflows (a reset of the workflow keeps it) and into the memo.
    """
    run, kind = _workflow_of(data)
    accepted_at = datetime.now(UTC)
    if not isinstance(data, InviteInput):  # an invite counts from its start (see `Invite`)
        data = dataclasses.replace(data, accepted_at=data.accepted_at or accepted_at.isoformat())
    send_at = None if isinstance(data, SendBatchInput) else data.send_at
    if send_at and datetime.fromisoformat(send_at) <= accepted_at:
        # A repeat of an accepted request gets its answer again whatever the clock says
        # now: only a new request must name a moment still to come.
        if await is_repeat(client, workflow_id, fingerprint):
            return StartedSend(workflow_id, replayed=True)
        raise InvalidField("send_at", "must be in the future")
    with temporal_errors(accepting=True):
        try:
            await client.start_workflow(
                run,
                data,
                id=workflow_id,
                task_queue=task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                memo={
                    REQUEST_HASH_MEMO: fingerprint.recorded,
                    ACCEPTED_AT_MEMO: accepted_at.isoformat(),
                },
                search_attributes=_initial_search_attributes(kind, data),
                static_summary=start_summary(kind, data.tenant_id),
                priority=task_priority(data.policy),
                rpc_timeout=RPC_TIMEOUT,
            )
            return StartedSend(workflow_id, replayed=False)
        except WorkflowAlreadyStartedError:
            pass
    if not await is_repeat(client, workflow_id, fingerprint):
        raise NotFound(NO_SUCH_EMAIL)  # started, then gone (retention) between two calls
    return StartedSend(workflow_id, replayed=True)


async def start_batch(
    client: Client,
    *,
    key: str,
    kind: SendKind,
    items: list[BatchItemInput],
    tenant_id: str | None,
    policy: DeliveryPolicy,
    fingerprint: Fingerprint,
    task_queue: str,
) -> tuple[SendBatchInput, StartedSend]:
    """Start a batch (either surface's): one workflow start records every item; its ids
    derive from the tenant's idempotency `key`, as `start_send` requires."""
    batch_id, workflow_id = batch_ids(key)
    data = SendBatchInput(
        batch_id=batch_id, kind=kind, items=items, tenant_id=tenant_id, policy=policy
    )
    started = await start_send(
        client, data, workflow_id=workflow_id, fingerprint=fingerprint, task_queue=task_queue
    )
    return data, started


async def is_repeat(client: Client, workflow_id: str, fingerprint: Fingerprint) -> bool:
    """Whether `workflow_id` holds the send this exact request started (its repeat).

    False if there is no such send; `IdempotencyKeyReused` if another body started it.
    """
    with temporal_errors(accepting=True):
        try:
            description = await client.get_workflow_handle(workflow_id).describe(
                rpc_timeout=RPC_TIMEOUT
            )
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                return False
            raise
        previous = await description.memo_value(REQUEST_HASH_MEMO, None)
    if not fingerprint.matches(previous):
        raise IdempotencyKeyReused("Idempotency-Key was already used with a different request body")
    return True


def start_summary(kind: SendKind, tenant_id: str | None) -> str:
    """The workflow's summary in the Web UI: kind and tenant, never a recipient or subject."""
    return f"{kind} for tenant {tenant_id or '-'}"


def _initial_search_attributes(kind: SendKind, data: SendInput) -> TypedSearchAttributes:
    """Visibility fields set with the start itself: no extra upsert in the first task."""
    scheduled = not isinstance(data, SendBatchInput) and data.send_at
    status = SendStatus.SCHEDULED if scheduled else SendStatus.QUEUED
    pairs: list[SearchAttributePair[Any]] = [
        SearchAttributePair(EMAIL_KIND, kind.value),
        SearchAttributePair(EMAIL_STATUS, status.value),
    ]
    if data.tenant_id:
        pairs.append(SearchAttributePair(TENANT_ID, data.tenant_id))
    return TypedSearchAttributes(pairs)


def _workflow_id(email_id: str, caller: Caller) -> str:
    workflow_id = owned_workflow_id(email_id, caller)
    if workflow_id is None:
        raise NotFound(NO_SUCH_EMAIL)
    return workflow_id


async def read_send(client: Client, email_id: str, caller: Caller) -> SendRecord:
    """A send's status: from the result once closed, else from the `status` query. A batch
    item's comes from its batch's status."""
    if (item := owned_batch_item(email_id, caller)) is not None:
        workflow_id, kind, index = item
        batch = await _read_batch(client, workflow_id, NO_SUCH_EMAIL, caller)
        if batch.kind != kind or index >= len(batch.items):
            raise NotFound(NO_SUCH_EMAIL)
        return SendRecord(workflow_id, item_status(batch, index))
    workflow_id = _workflow_id(email_id, caller)
    return await _read(client, workflow_id, caller)


def _check_tenant(description: WorkflowExecutionDescription, caller: Caller) -> None:
    """Another tenant's send is not found (the same answer as no send at all)."""
    if not caller.sees(description.typed_search_attributes.get(TENANT_ID)):
        raise NotFound(NO_SUCH_EMAIL)


async def read_batch(client: Client, batch_id: str, caller: Caller) -> BatchRecord:
    """A batch's status: its provider call and every item."""
    workflow_id = owned_batch_workflow_id(batch_id, caller)
    if workflow_id is None:
        raise NotFound(NO_SUCH_BATCH)
    return BatchRecord(workflow_id, await _read_batch(client, workflow_id, NO_SUCH_BATCH, caller))


async def _read_batch(
    client: Client, workflow_id: str, not_found: str, caller: Caller
) -> BatchStatusResult:
    handle = client.get_workflow_handle(workflow_id, result_type=BatchStatusResult)
    try:
        with temporal_errors():
            description = await handle.describe(rpc_timeout=RPC_TIMEOUT)
            if description.workflow_type != "SendBatch":
                raise NotFound(not_found)
            _check_tenant(description, caller)
            if description.status == WorkflowExecutionStatus.COMPLETED:
                result: BatchStatusResult = await handle.result(rpc_timeout=RPC_TIMEOUT)
                return result
            if description.status == WorkflowExecutionStatus.FAILED:
                return await _failed_status(
                    handle.result(rpc_timeout=RPC_TIMEOUT), BatchStatusResult
                )
            state: BatchStatusResult = await handle.query(
                BATCH_STATUS_QUERY, result_type=BatchStatusResult, rpc_timeout=RPC_TIMEOUT
            )
            return state
    except NotFound:
        raise NotFound(not_found) from None


async def _read(client: Client, workflow_id: str, caller: Caller) -> SendRecord:
    """A send's status: from the result once closed, else from the `status` query, else
    (no worker answered within `QUERY_TIMEOUT`) from what the server knows, not live."""
    handle = client.get_workflow_handle(workflow_id, result_type=EmailStatusResult)
    with temporal_errors():
        description = await handle.describe(rpc_timeout=RPC_TIMEOUT)
        _check_tenant(description, caller)
        if description.status == WorkflowExecutionStatus.COMPLETED:
            if description.workflow_type == InviteInput.WORKFLOW:
                # An invite's result is the invite; its invitation is the email.
                invite: InviteState = await client.get_workflow_handle(
                    workflow_id, result_type=InviteState
                ).result(rpc_timeout=RPC_TIMEOUT)
                if invite.invitation is None:
                    raise Unavailable("invite without an invitation status")
                return SendRecord(workflow_id, invite.invitation)
            result: EmailStatusResult = await handle.result(rpc_timeout=RPC_TIMEOUT)
            return SendRecord(workflow_id, result)
        if description.status == WorkflowExecutionStatus.FAILED:
            failed = await _failed_status(handle.result(rpc_timeout=RPC_TIMEOUT), EmailStatusResult)
            return SendRecord(workflow_id, failed)
        try:
            state: EmailStatusResult = await handle.query(
                "status", result_type=EmailStatusResult, rpc_timeout=QUERY_TIMEOUT
            )
        except (RPCError, WorkflowQueryFailedError, WorkflowQueryRejectedError) as err:
            # No worker answered in time (or it could not): say what the server knows.
            log.info("status of %s not live: %s", workflow_id, type(err).__name__)
            known = await _known_state(workflow_id, description)
            return SendRecord(
                workflow_id, _ended_early(known, description.status, live=False), live=False
            )
        return SendRecord(workflow_id, _ended_early(state, description.status))


async def _known_state(
    workflow_id: str, description: WorkflowExecutionDescription
) -> EmailStatusResult:
    """A send's state as the server knows it without a worker: search attributes and times."""
    attributes = description.typed_search_attributes
    kind = attributes.get(EMAIL_KIND)
    status = attributes.get(EMAIL_STATUS)
    accepted_at = await description.memo_value(ACCEPTED_AT_MEMO, None)
    started = description.start_time.isoformat()
    return EmailStatusResult(
        id=public_id_for(workflow_id) or workflow_id,
        kind=SendKind(kind) if kind else _kind_of(workflow_id),
        status=SendStatus(status) if status else SendStatus.QUEUED,
        created_at=str(accepted_at or started),
        updated_at=description.close_time.isoformat() if description.close_time else started,
        provider_message_id=attributes.get(PROVIDER_MESSAGE_ID),
        tenant_id=attributes.get(TENANT_ID),
    )


def _kind_of(workflow_id: str) -> SendKind:
    return SendKind.INVITE if workflow_id.startswith("invite-") else SendKind.EMAIL


# Where a send can stand while its workflow runs; an execution that ended (terminated by
# an operator or a Temporal limit, timed out) in one of these never finished its send.
UNFINISHED = frozenset(
    {SendStatus.SCHEDULED, SendStatus.QUEUED, SendStatus.SENDING, SendStatus.RETRYING}
)


def _ended_early(
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


async def _failed_status(result: Awaitable[Any], status_type: type[StatusT]) -> StatusT:
    # A failed send's workflow fails with its status as the failure's details.
    try:
        await result
    except WorkflowFailureError as failure:
        cause = failure.cause
        if isinstance(cause, ApplicationError) and cause.details:
            state: StatusT = value_to_type(status_type, cause.details[0], [])
            return state
    raise Unavailable("failed workflow without a recorded status")


async def cancel_send(client: Client, email_id: str, caller: Caller) -> CancelOutcome:
    """Cancel a send that has not gone out; `NotCancellable` (with the status) once it may have.

    With no worker to answer within `CANCEL_WAIT`, the cancel is recorded as a signal (a
    durable request) that the workflow applies when it next runs, if it still can."""
    if owned_batch_item(email_id, caller) is not None:
        send = await read_send(client, email_id, caller)  # NotFound for no such item
        raise NotCancellable(
            f"email is {send.state.status}; a batch's emails go out in one call and cannot "
            "be cancelled one by one"
        )
    workflow_id = _workflow_id(email_id, caller)
    handle = client.get_workflow_handle(workflow_id)
    with temporal_errors():
        if not caller.operator:
            # Before the update: another tenant's send must not change, nor reveal itself.
            _check_tenant(await handle.describe(rpc_timeout=RPC_TIMEOUT), caller)
        try:
            result: CancelResult = await handle.execute_update(
                CANCEL_UPDATE, CancelInput(), result_type=CancelResult, rpc_timeout=CANCEL_WAIT
            )
            return CancelOutcome(result.status)
        except WorkflowUpdateFailedError as err:
            cause = err.cause
            detail = cause.message if isinstance(cause, ApplicationError) else "cannot cancel"
            raise NotCancellable(detail) from None
        except WorkflowUpdateRPCTimeoutOrCancelledError:
            return await _request_cancel(handle)
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise
    # Not found (NotFound from the read), or already closed: the status read tells which.
    record = await _read(client, workflow_id, caller)
    raise NotCancellable(f"email is {record.state.status}; it can no longer be cancelled")


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


async def read_input(client: Client, email_id: str, caller: Caller) -> RecordedSend:
    """What a send was asked to send: its input (its message, for a caller-composed email),
    or a batch item's part of its batch's input.

    Read from the first event of its history, so no worker needs to answer. Another
    tenant's send is `NotFound`: its input (the tenant it names) is decoded, never returned.
    """
    item = owned_batch_item(email_id, caller)
    workflow_id = item[0] if item is not None else _workflow_id(email_id, caller)
    events = client.get_workflow_handle(workflow_id).fetch_history_events(
        page_size=1, rpc_timeout=RPC_TIMEOUT
    )
    with temporal_errors():
        async for event in events:
            started = event.workflow_execution_started_event_attributes
            input_type = INPUT_TYPES.get(started.workflow_type.name)
            if input_type is None:
                break
            [data] = await client.data_converter.decode(started.input.payloads, [input_type])
            if not isinstance(data, input_type) or not caller.sees(data.tenant_id):
                break
            if isinstance(data, SendBatchInput):
                if item is None or data.kind != item[1] or item[2] >= len(data.items):
                    break
                return data.items[item[2]]
            if item is not None:
                break
            return data
    raise NotFound(NO_SUCH_EMAIL)


async def reschedule_send(
    client: Client, email_id: str, send_at: datetime, caller: Caller
) -> RescheduleResult:
    """Move a scheduled send to `send_at`; `NotReschedulable` once it is due, sent or cancelled."""
    if owned_batch_item(email_id, caller) is not None:
        send = await read_send(client, email_id, caller)  # NotFound for no such item
        raise NotReschedulable(f"email is {send.state.status}; a batch's emails are not scheduled")
    workflow_id = _workflow_id(email_id, caller)
    handle = client.get_workflow_handle(workflow_id)
    with temporal_errors():
        if not caller.operator:
            # Before the update: another tenant's send must not change, nor reveal itself.
            _check_tenant(await handle.describe(rpc_timeout=RPC_TIMEOUT), caller)
        try:
            result: RescheduleResult = await handle.execute_update(
                RESCHEDULE_UPDATE,
                RescheduleInput(send_at=send_at.isoformat()),
                result_type=RescheduleResult,
                rpc_timeout=RPC_TIMEOUT,
            )
            return result
        except WorkflowUpdateFailedError as err:
            cause = err.cause
            detail = cause.message if isinstance(cause, ApplicationError) else "cannot reschedule"
            raise NotReschedulable(detail) from None
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise
    # Not found (NotFound from the read), or already closed: the status read tells which.
    record = await _read(client, workflow_id, caller)
    raise NotReschedulable(f"email is {record.state.status}; it can no longer be rescheduled")


async def list_sends(
    client: Client,
    caller: Caller,
    *,
    status: SendStatus | None = None,
    kind: SendKind | None = None,
    tenant_id: str | None = None,
    page_token: str | None = None,
    limit: int = 50,
) -> SendPage:
    """One page of sends, newest first, filtered by status, kind or tenant.

    A tenant's key lists its own tenant's sends only, whatever it asks for (naming another
    tenant is `Forbidden`); an operator lists every tenant's unless it names one.
    """
    tenant_id = caller.tenant_for(tenant_id)
    clauses = [BASE_QUERY]
    if status is not None:
        clauses.append(f'EmailStatus = "{status.value}"')
    if kind is not None:
        clauses.append(f'EmailKind = "{kind.value}"')
    if tenant_id is not None:
        clauses.append(f'TenantId = "{tenant_id}"')
    executions, next_token = await _list(
        client, " AND ".join(clauses), limit, _decode_token(page_token)
    )
    return SendPage(
        items=[_summary(e) for e in executions],
        next_page_token=_encode_token(next_token) if next_token else None,
    )


def _summary(execution: WorkflowExecution) -> SendSummary:
    attributes = execution.typed_search_attributes
    kind = attributes.get(EMAIL_KIND)
    status = attributes.get(EMAIL_STATUS)
    return SendSummary(
        id=public_id_for(execution.id) or execution.id,
        workflow_id=execution.id,
        kind=SendKind(kind) if kind else None,
        status=SendStatus(status) if status else None,
        tenant_id=attributes.get(TENANT_ID),
        provider_message_id=attributes.get(PROVIDER_MESSAGE_ID),
        started_at=execution.start_time.isoformat() if execution.start_time else None,
        closed_at=execution.close_time.isoformat() if execution.close_time else None,
    )


async def _list(
    client: Client, query: str, limit: int, page_token: bytes | None
) -> tuple[list[WorkflowExecution], bytes | None]:
    """One page of the visibility query, and the token of the next one."""
    pages = client.list_workflows(
        query, page_size=limit, next_page_token=page_token, rpc_timeout=RPC_TIMEOUT
    )
    with temporal_errors():
        try:
            await pages.fetch_next_page()
        except RPCError as err:
            if err.status == RPCStatusCode.INVALID_ARGUMENT or (
                page_token is not None and await _lists_without_token(client, query)
            ):
                raise InvalidRequest("invalid page_token") from None
            raise
    return list(pages.current_page or []), pages.next_page_token


async def _lists_without_token(client: Client, query: str) -> bool:
    """Whether the same query answers without the page token (then the token was bad: the
    server answers a token it cannot read with a generic error, not a false outage)."""
    probe = client.list_workflows(query, page_size=1, rpc_timeout=RPC_TIMEOUT)
    try:
        await probe.fetch_next_page()
    except RPCError:
        return False
    return True


def _encode_token(token: bytes) -> str:
    # A checksum in front, so a mangled token is refused here instead of confusing Temporal.
    checked = hashlib.sha256(token).digest()[:TOKEN_CHECK_BYTES] + token
    return base64.urlsafe_b64encode(checked).decode().rstrip("=")


def _decode_token(page_token: str | None) -> bytes | None:
    if not page_token:
        return None
    try:
        raw = base64.urlsafe_b64decode(page_token.encode() + b"=" * (-len(page_token) % 4))
    except (binascii.Error, ValueError):
        raw = b""
    check, token = raw[:TOKEN_CHECK_BYTES], raw[TOKEN_CHECK_BYTES:]
    if not token or hashlib.sha256(token).digest()[:TOKEN_CHECK_BYTES] != check:
        raise InvalidRequest("invalid page_token")
    return token


async def find_send(
    client: Client, *, email_id: str | None, provider_message_id: str | None
) -> str | None:
    """The workflow id of a send, by our id (its webhook tag) or else the provider's id.

    The provider id goes through visibility (eventually consistent); None if not found.
    """
    if email_id and (workflow_id := workflow_id_for(email_id)):
        return workflow_id
    if email_id and (item := batch_item_of(email_id)):
        return item[0]  # the batch routes the event to the item by its id
    # Only a well-formed id reaches the query text.
    if provider_message_id is None or not _PROVIDER_ID.fullmatch(provider_message_id):
        return None
    query = f'ProviderMessageId = "{provider_message_id}"'
    executions, _ = await _list(client, query, 1, None)
    return executions[0].id if executions else None


async def signal_delivery_event(
    client: Client, workflow_id: str, event: DeliveryEventInput
) -> bool:
    """Signal a provider event to its send's workflow; False if no such open workflow."""
    with temporal_errors():
        try:
            await client.get_workflow_handle(workflow_id).signal(
                DELIVERY_EVENT_SIGNAL, event, rpc_timeout=RPC_TIMEOUT
            )
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                return False
            raise
    return True


@contextmanager
def temporal_errors(*, accepting: bool = False) -> Iterator[None]:
    """Temporal client failures as domain errors: unknown workflow, or Temporal unavailable
    (`NotRecorded` while accepting a send: then nothing was accepted)."""
    unavailable = NotRecorded if accepting else Unavailable
    try:
        yield
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise NotFound(NO_SUCH_EMAIL) from None
        if err.status not in UNAVAILABLE_CODES:
            # Unexpected (e.g. permission denied): nothing was accepted either.
            log.error("temporal error: %s", err.status)
        raise unavailable(err.message) from None
    except RuntimeError as err:
        # A lazy client that has never reached the server fails its first call this way.
        if "client connect" in str(err):
            raise unavailable("cannot connect to Temporal") from None
        raise
