"""Lists of sends from Temporal's visibility store (eventually consistent), a page at a
time, with page tokens the caller cannot forge into a query of its own."""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from temporalio.client import Client, WorkflowExecution
from temporalio.service import RPCError, RPCStatusCode

from activities.delivery_contract import SendKind
from api.answers import EmailPage, EmailSummary
from api.errors import InvalidRequest
from api.idempotency import owned_workflow_id
from api.temporal_errors import RPC_TIMEOUT, temporal_errors
from api.tenants import Caller
from workflows.ids import public_id_for
from workflows.search_attributes import EMAIL_KIND, EMAIL_STATUS, PROVIDER_MESSAGE_ID, TENANT_ID
from workflows.status import SendStatus
from workflows.types import InviteInput, SendEmailInput

log = logging.getLogger("durable_mail.api")
TOKEN_CHECK_BYTES = 8
# Every single send's workflow type (`Invite`: invites started before 1.0 named it so);
# the filters below are validated enums and ids, never raw text.
BASE_QUERY = (
    "("
    + " OR ".join(
        f"WorkflowType = '{name}'"
        for name in (SendEmailInput.WORKFLOW, InviteInput.WORKFLOW, "Invite")
    )
    + ")"
)


async def list_sends(
    client: Client,
    caller: Caller,
    *,
    status: SendStatus | None = None,
    kind: SendKind | None = None,
    tenant_id: str | None = None,
    page_token: str | None = None,
    limit: int = 50,
) -> EmailPage:
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
    executions, next_token = await list_page(
        client, " AND ".join(clauses), limit, decode_token(page_token)
    )
    return EmailPage(
        items=[_summary(e) for e in executions],
        next_page_token=encode_token(next_token) if next_token else None,
    )


def _summary(execution: WorkflowExecution) -> EmailSummary:
    attributes = execution.typed_search_attributes
    kind = attributes.get(EMAIL_KIND)
    status = attributes.get(EMAIL_STATUS)
    return EmailSummary(
        id=public_id_for(execution.id) or execution.id,
        workflow_id=execution.id,
        kind=SendKind(kind) if kind else None,
        status=SendStatus(status) if status else None,
        tenant_id=attributes.get(TENANT_ID),
        provider_message_id=attributes.get(PROVIDER_MESSAGE_ID),
        started_at=execution.start_time.isoformat() if execution.start_time else None,
        closed_at=execution.close_time.isoformat() if execution.close_time else None,
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


def encode_token(token: bytes) -> str:
    """The page token as the caller sees it: a checksum in front, so a mangled token is
    refused here instead of confusing Temporal."""
    checked = hashlib.sha256(token).digest()[:TOKEN_CHECK_BYTES] + token
    return base64.urlsafe_b64encode(checked).decode().rstrip("=")


def decode_token(page_token: str | None) -> bytes | None:
    """Temporal's page token from the caller's; `InvalidRequest` for a mangled one."""
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


# A cursor page (Resend's `GET /emails`) reads at most this many executions: visibility
# has no ORDER BY on SQL stores, so the newest are picked from its own order (see below).
MAX_SCAN = 2000
SCAN_PAGE = 100


@dataclass(frozen=True)
class CursorPage:
    """Sends newest first, and whether more lie beyond them in the direction asked."""

    executions: list[WorkflowExecution]
    has_more: bool


def _key(execution: WorkflowExecution) -> tuple[datetime, str]:
    return (execution.start_time, execution.id)


async def _cursor_key(client: Client, caller: Caller, email_id: str) -> tuple[datetime, str]:
    """Where a cursor stands: its send's start time and workflow id (one of the caller's
    single sends, else `InvalidRequest`: a cursor is never an existence oracle)."""
    workflow_id = owned_workflow_id(email_id, caller)
    if workflow_id is None:
        raise InvalidRequest("the cursor is not an email of this list")
    with temporal_errors():
        try:
            description = await client.get_workflow_handle(workflow_id).describe(
                rpc_timeout=RPC_TIMEOUT
            )
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise
            raise InvalidRequest("the cursor is not an email of this list") from None
    if not caller.sees(description.typed_search_attributes.get(TENANT_ID)):
        raise InvalidRequest("the cursor is not an email of this list")
    return (description.start_time, description.id)


async def list_by_cursor(
    client: Client,
    caller: Caller,
    *,
    limit: int,
    after: str | None = None,
    before: str | None = None,
) -> CursorPage:
    """One page of the caller's single sends, newest first, around a cursor (an email id):
    `after` the older ones that follow it, `before` the newer ones that precede it.

    SQL visibility lists open executions first, then closed ones by close time, newest
    first; a send closes after it starts, so once `limit + 1` sends are held and the
    listing has reached sends closed before the oldest of them started, none further can
    be newer. An older cursor's page (`after`) reads on until then, `before` reads all the
    newer sends (at most `MAX_SCAN` executions either way).
    """
    clauses = [BASE_QUERY]
    tenant_id = caller.tenant_for(None)
    if tenant_id is not None:
        clauses.append(f'TenantId = "{tenant_id}"')
    cursor_id = after or before
    cursor = await _cursor_key(client, caller, cursor_id) if cursor_id else None
    if cursor is not None:
        edge = (cursor[0] + timedelta(microseconds=1)).isoformat()
        bound = cursor[0].isoformat()
        clauses.append(f"StartTime < '{edge}'" if after else f"StartTime >= '{bound}'")
    query = " AND ".join(clauses)
    if before and cursor is not None:
        newer = [e async for e in _scan(client, query) if _key(e) > cursor]
        newer.sort(key=_key)
        return CursorPage(sorted(newer[:limit], key=_key, reverse=True), len(newer) > limit)
    held: list[WorkflowExecution] = []
    last_closed: datetime | None = None
    async for execution in _scan(client, query):
        if cursor is not None and _key(execution) >= cursor:
            continue
        held = sorted([*held, execution], key=_key, reverse=True)[: limit + 1]
        closed = execution.close_time
        if closed is not None and last_closed is not None and closed > last_closed:
            last_closed = None  # not the order assumed: read on, never stop early
        elif closed is not None and len(held) > limit and closed < held[-1].start_time:
            break
        last_closed = closed or last_closed
    return CursorPage(held[:limit], len(held) > limit)


async def _scan(client: Client, query: str) -> AsyncIterator[WorkflowExecution]:
    """The executions of a query in visibility's order, at most `MAX_SCAN` of them."""
    with temporal_errors():
        scanned = 0
        async for execution in client.list_workflows(
            query, page_size=SCAN_PAGE, rpc_timeout=RPC_TIMEOUT
        ):
            yield execution
            scanned += 1
            if scanned >= MAX_SCAN:
                log.warning("cursor listing stopped after %d executions", MAX_SCAN)
                return
