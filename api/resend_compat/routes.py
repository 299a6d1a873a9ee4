"""Resend's email API at the API's root: `POST /emails`, `GET /emails/{id}`,
`PATCH /emails/{id}` (reschedule) and `POST /emails/{id}/cancel`.

The same service and workflow as `POST /v1/emails` (`SendEmail`), so the ids answered here
are our email ids, and the sends appear in `/v1/emails`, the Web UI and the webhooks. The
same tenancy too: a tenant's key sends for its tenant from its sender domains only, and
another tenant's email is not found.
"""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.exceptions import RequestValidationError

from activities.delivery_contract import SendKind
from api import sends
from api.deps import (
    API_KEY_SCHEME,
    CallerDep,
    FingerprintKeysDep,
    IdempotencyKey,
    SettingsDep,
    TemporalClientDep,
)
from api.errors import InvalidRequest
from api.idempotency import send_key
from api.policy import delivery_policy, fairness_key, transactional
from api.resend_compat.errors import RESPONSES, ResendRoute
from api.resend_compat.mapping import email_object, message_of
from api.resend_compat.schemas import (
    ResendEmail,
    ResendEmailRef,
    ResendSendRequest,
    ResendSendResponse,
    ResendUpdateRequest,
    schedule_problem,
)
from api.tenants import allowed_sender_domains, check_sender
from workflows.ids import send_ids
from workflows.types import SendEmailInput

TAG = "Resend-compatible"
router = APIRouter(
    tags=[TAG], route_class=ResendRoute, responses=RESPONSES, dependencies=[API_KEY_SCHEME]
)


# Idempotency keys of this surface are apart from /v1's (see `send_key`).
SURFACE_SCOPE = "resend"


@router.post("/emails", response_model=ResendSendResponse)
async def send_email(
    body: ResendSendRequest,
    response: Response,
    client: TemporalClientDep,
    settings: SettingsDep,
    caller: CallerDep,
    fingerprints: FingerprintKeysDep,
    idempotency_key: IdempotencyKey = None,
) -> ResendSendResponse:
    """Send an email (Resend's `POST /emails`): answers once the send is durably recorded."""
    # A tenant's key sends for its tenant, an operator's for none (Resend has no such field).
    tenant_id = caller.tenant_for(None)
    check_sender(body.sender, allowed_sender_domains(settings, caller), field="from")
    key = send_key(SendKind.EMAIL, idempotency_key, tenant_id=tenant_id, surface=SURFACE_SCOPE)
    email_id, workflow_id = send_ids(SendKind.EMAIL, key)
    fingerprint = fingerprints.fingerprint(
        {**body.model_dump(mode="json", by_alias=True), "tenant_id": tenant_id}, idempotency_key
    )
    if body.scheduled_at and (problem := schedule_problem(body.scheduled_at)):
        # A repeat of a request accepted when its time was still ahead gets its answer.
        if idempotency_key is not None and await sends.is_repeat(client, workflow_id, fingerprint):
            response.headers["Idempotent-Replayed"] = "true"
            return ResendSendResponse(id=email_id)
        raise RequestValidationError(
            [{"type": "value_error", "loc": ("body", "scheduled_at"), "msg": problem}]
        )
    data = SendEmailInput(
        email_id=email_id,
        message=message_of(body, email_id),
        tenant_id=tenant_id,
        policy=delivery_policy(settings, transactional(fairness_key(caller.key_id, tenant_id))),
        send_at=body.scheduled_at.isoformat() if body.scheduled_at else None,
    )
    started = await sends.start_send(
        client,
        data,
        workflow_id=workflow_id,
        fingerprint=fingerprint,
        task_queue=settings.task_queue,
    )
    if started.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return ResendSendResponse(id=email_id)


@router.get("/emails/{email_id}", response_model=ResendEmail)
async def get_email(email_id: str, client: TemporalClientDep, caller: CallerDep) -> ResendEmail:
    """Retrieve an email (Resend's `GET /emails/{id}`), `last_event` in Resend's words."""
    # The status read first: it refuses another tenant's send before its input is read.
    send = await sends.read_send(client, email_id, caller)
    data = await sends.read_input(client, email_id, caller)
    return email_object(data, send.state)


@router.patch("/emails/{email_id}", response_model=ResendEmailRef)
async def update_email(
    email_id: str, body: ResendUpdateRequest, client: TemporalClientDep, caller: CallerDep
) -> ResendEmailRef:
    """Reschedule a scheduled email (Resend's `PATCH /emails/{id}`)."""
    if body.id is not None and body.id != email_id:
        raise InvalidRequest("the `id` in the body is not the email of the path")
    await sends.reschedule_send(client, email_id, body.scheduled_at, caller)
    return ResendEmailRef(id=email_id)


@router.post("/emails/{email_id}/cancel", response_model=ResendEmailRef)
async def cancel_email(
    email_id: str, client: TemporalClientDep, caller: CallerDep
) -> ResendEmailRef:
    """Cancel an email that has not gone out (Resend's `POST /emails/{id}/cancel`)."""
    await sends.cancel_send(client, email_id, caller)
    return ResendEmailRef(id=email_id)
