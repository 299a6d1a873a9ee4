"""Resend's email API at the API's root: `POST /emails`, `GET /emails/{id}`,
`PATCH /emails/{id}` (reschedule) and `POST /emails/{id}/cancel`.

The same service and workflow as `POST /v1/emails` (`SendEmail`), so the ids answered here
are our email ids, and the sends appear in `/v1/emails`, the Web UI and the webhooks.
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from activities.delivery_contract import SendKind
from api import sends
from api.deps import API_KEY_SCHEME, CallerDep, IdempotencyKey, SettingsDep, TemporalClientDep
from api.errors import InvalidRequest
from api.idempotency import request_fingerprint, send_key
from api.policy import delivery_policy
from api.resend_compat.errors import RESPONSES, ResendRoute
from api.resend_compat.mapping import email_object, message_of
from api.resend_compat.schemas import (
    ResendEmail,
    ResendEmailRef,
    ResendSendRequest,
    ResendSendResponse,
    ResendUpdateRequest,
)
from workflows.ids import send_ids
from workflows.types import SendEmailInput

TAG = "Resend-compatible"
router = APIRouter(
    tags=[TAG], route_class=ResendRoute, responses=RESPONSES, dependencies=[API_KEY_SCHEME]
)


def _idempotency_scope(scope: str) -> str:
    # Apart from /v1's: the two surfaces fingerprint different bodies, so one key shared
    # between them could only ever answer 409.
    return f"{scope}/resend"


@router.post("/emails", response_model=ResendSendResponse)
async def send_email(
    body: ResendSendRequest,
    response: Response,
    client: TemporalClientDep,
    settings: SettingsDep,
    caller: CallerDep,
    idempotency_key: IdempotencyKey = None,
) -> ResendSendResponse:
    """Send an email (Resend's `POST /emails`): answers once the send is durably recorded."""
    key = send_key(_idempotency_scope(caller.scope), SendKind.EMAIL, idempotency_key)
    email_id, workflow_id = send_ids(SendKind.EMAIL, key)
    data = SendEmailInput(
        email_id=email_id,
        message=message_of(body, email_id),
        policy=delivery_policy(settings),
        send_at=body.scheduled_at.isoformat() if body.scheduled_at else None,
    )
    started = await sends.start_send(
        client,
        data,
        workflow_id=workflow_id,
        fingerprint=request_fingerprint(
            body.model_dump(mode="json", by_alias=True), idempotency_key
        ),
        task_queue=settings.task_queue,
    )
    if started.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return ResendSendResponse(id=email_id)


@router.get("/emails/{email_id}", response_model=ResendEmail)
async def get_email(email_id: str, client: TemporalClientDep, caller: CallerDep) -> ResendEmail:
    """Retrieve an email (Resend's `GET /emails/{id}`), `last_event` in Resend's words."""
    data = await sends.read_input(client, email_id)
    send = await sends.read_send(client, email_id)
    return email_object(data, send.state)


@router.patch("/emails/{email_id}", response_model=ResendEmailRef)
async def update_email(
    email_id: str, body: ResendUpdateRequest, client: TemporalClientDep, caller: CallerDep
) -> ResendEmailRef:
    """Reschedule a scheduled email (Resend's `PATCH /emails/{id}`)."""
    if body.id is not None and body.id != email_id:
        raise InvalidRequest("the `id` in the body is not the email of the path")
    await sends.reschedule_send(client, email_id, body.scheduled_at)
    return ResendEmailRef(id=email_id)


@router.post("/emails/{email_id}/cancel", response_model=ResendEmailRef)
async def cancel_email(
    email_id: str, client: TemporalClientDep, caller: CallerDep
) -> ResendEmailRef:
    """Cancel an email that has not gone out (Resend's `POST /emails/{id}/cancel`)."""
    await sends.cancel_send(client, email_id)
    return ResendEmailRef(id=email_id)
