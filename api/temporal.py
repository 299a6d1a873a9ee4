"""What the routes ask of Temporal: idempotent starts and status reads, with errors mapped."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from fastapi import HTTPException, Response, status
from pydantic import BaseModel
from temporalio.client import (
    Client,
    WorkflowExecution,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowUpdateFailedError,
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

from api.schemas import EmailCreate, InviteCreate
from workflows.search_attributes import EMAIL_KIND, EMAIL_STATUS, TENANT_ID
from workflows.status import STATUS_QUEUED, STATUS_SCHEDULED
from workflows.types import (
    CANCEL_UPDATE,
    DELIVERY_EVENT_SIGNAL,
    CancelInput,
    CancelResult,
    DeliveryEventInput,
    EmailStatusResult,
)

RPC_TIMEOUT = timedelta(seconds=5)
REQUEST_HASH_MEMO = "request_sha256"
MAX_IDEMPOTENCY_KEY = 256
UNAVAILABLE_CODES = {
    RPCStatusCode.UNAVAILABLE,
    RPCStatusCode.DEADLINE_EXCEEDED,
    RPCStatusCode.CANCELLED,
    RPCStatusCode.RESOURCE_EXHAUSTED,
    RPCStatusCode.UNKNOWN,
}


class TemporalUnavailable(Exception):
    """Temporal could not durably record or answer; the route answers 503."""


def new_key(scope: str, kind: str, idempotency_key: str | None) -> str:
    """A fresh hex id, or one derived from the caller's idempotency key (same key, same id)."""
    if idempotency_key is None:
        return uuid.uuid4().hex
    if not 1 <= len(idempotency_key) <= MAX_IDEMPOTENCY_KEY or not idempotency_key.isprintable():
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            "Idempotency-Key must be 1-256 printable characters",
        )
    material = f"{scope}\x00{kind}\x00{idempotency_key}".encode()
    return hashlib.sha256(material).hexdigest()[:32]


def request_hash(body: BaseModel, idempotency_key: str | None) -> str:
    """Fingerprint of a request, to tell a true repeat from a key reused for another body."""
    canonical = json.dumps(body.model_dump(mode="json", by_alias=True), sort_keys=True)
    return hashlib.sha256(f"{idempotency_key}\x00{canonical}".encode()).hexdigest()


async def start_once(
    client: Client,
    run: Callable[..., Awaitable[Any]],
    arg: Any,
    *,
    workflow_id: str,
    fingerprint: str,
    task_queue: str,
    search_attributes: TypedSearchAttributes | None = None,
) -> bool:
    """Start the workflow unless this exact request already started it.

    True if started now, False for a repeat (same id, same body). REJECT_DUPLICATE keeps a
    finished send from being started again under the same id (USE_EXISTING alone would).
    """
    with temporal_errors():
        try:
            await client.start_workflow(
                run,
                arg,
                id=workflow_id,
                task_queue=task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                memo={REQUEST_HASH_MEMO: fingerprint},
                search_attributes=search_attributes,
                rpc_timeout=RPC_TIMEOUT,
            )
            return True
        except WorkflowAlreadyStartedError:
            pass
        description = await client.get_workflow_handle(workflow_id).describe(
            rpc_timeout=RPC_TIMEOUT
        )
        previous = await description.memo_value(REQUEST_HASH_MEMO, None)
    if previous != fingerprint:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            "Idempotency-Key was already used with a different request body",
        )
    return False


def initial_search_attributes(
    kind: str, tenant_id: str | None, *, scheduled: bool
) -> TypedSearchAttributes:
    """Visibility fields set with the start itself: no extra upsert in the first task."""
    pairs: list[SearchAttributePair[Any]] = [
        SearchAttributePair(EMAIL_KIND, kind),
        SearchAttributePair(EMAIL_STATUS, STATUS_SCHEDULED if scheduled else STATUS_QUEUED),
    ]
    if tenant_id:
        pairs.append(SearchAttributePair(TENANT_ID, tenant_id))
    return TypedSearchAttributes(pairs)


async def accept_send(
    client: Client,
    run: Callable[..., Awaitable[Any]],
    arg: Any,
    *,
    kind: str,
    workflow_id: str,
    body: InviteCreate | EmailCreate,
    idempotency_key: str | None,
    task_queue: str,
    response: Response,
) -> None:
    """Start a send for a validated request (once per idempotency key); mark a replay."""
    started = await start_once(
        client,
        run,
        arg,
        workflow_id=workflow_id,
        fingerprint=request_hash(body, idempotency_key),
        task_queue=task_queue,
        search_attributes=initial_search_attributes(
            kind, body.tenant_id, scheduled=body.send_at is not None
        ),
    )
    if not started:
        response.headers["Idempotent-Replayed"] = "true"


async def signal_delivery_event(
    client: Client, workflow_id: str, event: DeliveryEventInput
) -> bool:
    """Signal a provider event to its workflow; False if no such open workflow."""
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


async def cancel_send(client: Client, workflow_id: str) -> CancelResult:
    """Cancel a send that has not gone out; 409 (with the status) once it may have."""
    handle = client.get_workflow_handle(workflow_id)
    with temporal_errors():
        try:
            result: CancelResult = await handle.execute_update(
                CANCEL_UPDATE, CancelInput(), result_type=CancelResult, rpc_timeout=RPC_TIMEOUT
            )
            return result
        except WorkflowUpdateFailedError as err:
            cause = err.cause
            detail = cause.message if isinstance(cause, ApplicationError) else "cannot cancel"
            raise HTTPException(status.HTTP_409_CONFLICT, detail) from None
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise
    # Not found (404 from the read), or already closed: the status read tells which.
    state = await read_status(client, workflow_id)
    raise HTTPException(
        status.HTTP_409_CONFLICT, f"email is {state.status}; it can no longer be cancelled"
    )


async def list_page(
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
            if err.status == RPCStatusCode.INVALID_ARGUMENT:
                raise HTTPException(status.HTTP_400_BAD_REQUEST, "invalid page_token") from None
            raise
    return list(pages.current_page or []), pages.next_page_token


async def read_status(client: Client, workflow_id: str) -> EmailStatusResult:
    """The email's status: from the result once closed, else from the `status` query."""
    handle = client.get_workflow_handle(workflow_id, result_type=EmailStatusResult)
    with temporal_errors():
        description = await handle.describe(rpc_timeout=RPC_TIMEOUT)
        if description.status == WorkflowExecutionStatus.COMPLETED:
            result: EmailStatusResult = await handle.result(rpc_timeout=RPC_TIMEOUT)
            return result
        if description.status == WorkflowExecutionStatus.FAILED:
            return await _failed_status(handle.result(rpc_timeout=RPC_TIMEOUT))
        state: EmailStatusResult = await handle.query(
            "status", result_type=EmailStatusResult, rpc_timeout=RPC_TIMEOUT
        )
        return state


async def _failed_status(result: Awaitable[Any]) -> EmailStatusResult:
    try:
        await result
    except WorkflowFailureError as failure:
        cause = failure.cause
        if isinstance(cause, ApplicationError) and cause.details:
            state: EmailStatusResult = value_to_type(EmailStatusResult, cause.details[0], [])
            return state
    raise TemporalUnavailable("failed workflow without a recorded status")


async def find_by_provider_id(client: Client, provider_message_id: str) -> str | None:
    """The workflow id of a send by its provider message id (visibility, eventually)."""
    executions, _ = await list_page(client, f'ProviderMessageId = "{provider_message_id}"', 1, None)
    return executions[0].id if executions else None


@contextmanager
def temporal_errors() -> Iterator[None]:
    """Map Temporal client failures to HTTP answers: 404 unknown, 503 unreachable."""
    try:
        yield
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no email with this id") from None
        if err.status in UNAVAILABLE_CODES:
            raise TemporalUnavailable(err.message) from None
        raise
    except RuntimeError as err:
        # A lazy client that has never reached the server fails its first call this way.
        if "client connect" in str(err):
            raise TemporalUnavailable("cannot connect to Temporal") from None
        raise
