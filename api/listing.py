"""Lists of sends from Temporal's visibility store (eventually consistent), a page at a
time, with page tokens the caller cannot forge into a query of its own."""

from __future__ import annotations

import base64
import binascii
import hashlib

from temporalio.client import Client, WorkflowExecution
from temporalio.service import RPCError, RPCStatusCode

from activities.delivery_contract import SendKind
from api.answers import EmailPage, EmailSummary
from api.errors import InvalidRequest
from api.temporal_errors import RPC_TIMEOUT, temporal_errors
from api.tenants import Caller
from workflows.ids import public_id_for
from workflows.search_attributes import EMAIL_KIND, EMAIL_STATUS, PROVIDER_MESSAGE_ID, TENANT_ID
from workflows.status import SendStatus
from workflows.types import InviteInput, SendEmailInput

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
