"""`/v1/emails`: send a caller-composed email; list, read, trace and cancel any send."""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import asdict
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Response, status
from temporalio.client import WorkflowExecution

from activities.types import EmailMessage, EmailTag
from api.deps import CallerDep, ClientDep, IdempotencyKey, SettingsDep
from api.schemas import (
    ERRORS,
    CancelAccepted,
    EmailAccepted,
    EmailCreate,
    EmailPage,
    EmailStatus,
    EmailSummary,
    EmailTimeline,
    TenantId,
)
from api.temporal import (
    accept_send,
    cancel_send,
    list_page,
    new_key,
    read_status,
)
from api.timeline import timeline
from workflows.ids import EMAIL_ID_PREFIX, KIND_EMAIL, public_id_for, workflow_id_for
from workflows.search_attributes import EMAIL_KIND, EMAIL_STATUS, PROVIDER_MESSAGE_ID, TENANT_ID
from workflows.send_email import SendEmail
from workflows.status import STATUSES
from workflows.types import SendEmailInput

from .policy import delivery_policy

TOKEN_CHECK_BYTES = 8
router = APIRouter(prefix="/v1/emails", tags=["emails"])


def _as_list(value: str | list[str] | None) -> list[str]:
    if value is None:
        return []
    return [str(value)] if isinstance(value, str) else [str(v) for v in value]


@router.post(
    "", status_code=status.HTTP_202_ACCEPTED, response_model=EmailAccepted, responses=ERRORS
)
async def create_email(
    body: EmailCreate,
    response: Response,
    client: ClientDep,
    settings: SettingsDep,
    caller: CallerDep,
    idempotency_key: IdempotencyKey = None,
) -> EmailAccepted:
    """Queue one email durably and answer at once; the worker sends it exactly once."""
    key = new_key(caller.scope, KIND_EMAIL, idempotency_key)
    email_id = EMAIL_ID_PREFIX + key
    workflow_id = f"email-{key}"
    tags = [EmailTag(t.name, t.value) for t in body.tags or []]
    message = EmailMessage(
        sender=body.sender or settings.email_from,
        to=_as_list(body.to),
        subject=body.subject,
        html=body.html,
        text=body.text,
        reply_to=_as_list(body.reply_to),
        tags=[*tags, EmailTag("kind", KIND_EMAIL), EmailTag("email_id", email_id)],
    )
    await accept_send(
        client,
        SendEmail.run,
        SendEmailInput(
            email_id=email_id,
            message=message,
            tenant_id=body.tenant_id,
            policy=delivery_policy(settings),
            send_at=body.send_at.isoformat() if body.send_at else None,
        ),
        kind=KIND_EMAIL,
        workflow_id=workflow_id,
        body=body,
        idempotency_key=idempotency_key,
        task_queue=settings.task_queue,
        response=response,
    )
    return EmailAccepted(id=email_id, workflow_id=workflow_id, status_url=f"/v1/emails/{email_id}")


EmailStatusFilter = Literal[STATUSES]  # type: ignore[valid-type]
# Both workflow types; the filters below are validated enums and ids, never raw text.
BASE_QUERY = "(WorkflowType = 'SendEmail' OR WorkflowType = 'SendInviteEmail')"


def _summary(execution: WorkflowExecution) -> EmailSummary:
    attributes = execution.typed_search_attributes
    return EmailSummary(
        id=public_id_for(execution.id) or execution.id,
        workflow_id=execution.id,
        kind=attributes.get(EMAIL_KIND),
        status=attributes.get(EMAIL_STATUS),
        tenant_id=attributes.get(TENANT_ID),
        provider_message_id=attributes.get(PROVIDER_MESSAGE_ID),
        started_at=execution.start_time.isoformat() if execution.start_time else None,
        closed_at=execution.close_time.isoformat() if execution.close_time else None,
    )


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
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "invalid page_token")
    return token


@router.get("", response_model=EmailPage, responses=ERRORS)
async def list_emails(
    client: ClientDep,
    caller: CallerDep,
    email_status: Annotated[EmailStatusFilter | None, Query(alias="status")] = None,
    kind: Literal["invite", "email"] | None = None,
    tenant_id: TenantId | None = None,
    page_token: Annotated[str | None, Query(max_length=4096)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> EmailPage:
    """List sends, newest first, filtered by status, kind or tenant (eventually consistent)."""
    clauses = [BASE_QUERY]
    if email_status is not None:
        clauses.append(f'EmailStatus = "{email_status}"')
    if kind is not None:
        clauses.append(f'EmailKind = "{kind}"')
    if tenant_id is not None:
        clauses.append(f'TenantId = "{tenant_id}"')
    executions, next_token = await list_page(
        client, " AND ".join(clauses), limit, _decode_token(page_token)
    )
    return EmailPage(
        items=[_summary(e) for e in executions],
        next_page_token=_encode_token(next_token) if next_token else None,
    )


def _workflow_id(email_id: str) -> str:
    workflow_id = workflow_id_for(email_id)
    if workflow_id is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no email with this id")
    return workflow_id


@router.get(
    "/{email_id}/events",
    response_model=EmailTimeline,
    response_model_exclude_none=True,
    responses=ERRORS,
)
async def get_email_events(email_id: str, client: ClientDep, caller: CallerDep) -> EmailTimeline:
    """Timeline of one send: accepted, each attempt, sent, each delivery event, with times."""
    workflow_id = _workflow_id(email_id)
    state = await read_status(client, workflow_id)
    return EmailTimeline(
        id=email_id, workflow_id=workflow_id, status=state.status, events=timeline(state)
    )


@router.delete("/{email_id}", response_model=CancelAccepted, responses=ERRORS)
async def cancel_email(email_id: str, client: ClientDep, caller: CallerDep) -> CancelAccepted:
    """Cancel a send that has not gone out (scheduled or waiting); 409 once it has."""
    result = await cancel_send(client, _workflow_id(email_id))
    return CancelAccepted(id=email_id, status=result.status)


@router.get("/{email_id}", response_model=EmailStatus, responses=ERRORS)
async def get_email(email_id: str, client: ClientDep) -> EmailStatus:
    """Status of an email or invite: every attempt, the last error and the provider id."""
    workflow_id = _workflow_id(email_id)
    state = await read_status(client, workflow_id)
    return EmailStatus.model_validate(
        {**asdict(state), "workflow_id": workflow_id, "attempt_count": len(state.attempts)}
    )
