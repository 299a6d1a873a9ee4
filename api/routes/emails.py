"""`POST /v1/emails` (a caller-composed email) and `GET /v1/emails/{id}` (any send's status)."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, HTTPException, Response, status

from activities.types import EmailMessage, EmailTag
from api.deps import CallerDep, ClientDep, IdempotencyKey, SettingsDep
from api.schemas import ERRORS, EmailAccepted, EmailCreate, EmailStatus
from api.temporal import new_key, read_status, request_hash, start_once
from workflows.send_email import SendEmail
from workflows.shared import EMAIL_ID_PREFIX, KIND_EMAIL, SendEmailInput, workflow_id_for

from .policy import delivery_policy

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
    started = await start_once(
        client,
        SendEmail.run,
        SendEmailInput(
            email_id=email_id,
            message=message,
            tenant_id=body.tenant_id,
            policy=delivery_policy(settings),
        ),
        workflow_id=workflow_id,
        fingerprint=request_hash(body, idempotency_key),
        task_queue=settings.task_queue,
    )
    if not started:
        response.headers["Idempotent-Replayed"] = "true"
    return EmailAccepted(id=email_id, workflow_id=workflow_id, status_url=f"/v1/emails/{email_id}")


@router.get("/{email_id}", response_model=EmailStatus, responses=ERRORS)
async def get_email(email_id: str, client: ClientDep) -> EmailStatus:
    """Status of an email or invite: every attempt, the last error and the provider id."""
    workflow_id = workflow_id_for(email_id)
    if workflow_id is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no email with this id")
    state = await read_status(client, workflow_id)
    return EmailStatus.model_validate(
        {**asdict(state), "workflow_id": workflow_id, "attempt_count": len(state.attempts)}
    )
