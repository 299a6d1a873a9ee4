"""Resend's email API at the API's root: `POST /emails`, `POST /emails/batch`,
`GET /emails/{id}`, `PATCH /emails/{id}` (reschedule) and `POST /emails/{id}/cancel`.

The same service and workflows as `POST /v1/emails` (`SendEmail`) and `POST
/v1/emails/batch` (`SendBatch`), so the ids answered here are our email ids, and the sends
appear in `/v1/emails`, the Web UI and the webhooks. The same tenancy too: a tenant's key
sends for its tenant from its sender domains only, and another tenant's email is not found.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Response
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError

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
from api.errors import InvalidRequest, SenderNotAllowed
from api.idempotency import batch_kind, send_key
from api.policy import bulk, delivery_policy, fairness_key, transactional
from api.resend_compat.errors import (
    RESPONSES,
    Answered,
    ResendRoute,
    domain_error,
    error,
    validation_error,
)
from api.resend_compat.mapping import email_object, message_of
from api.resend_compat.schemas import (
    BatchBody,
    BatchValidation,
    ResendBatchEmail,
    ResendBatchError,
    ResendBatchResponse,
    ResendEmail,
    ResendEmailRef,
    ResendSendRequest,
    ResendSendResponse,
    ResendUpdateRequest,
    schedule_problem,
)
from api.tenants import allowed_sender_domains, check_sender
from workflows.batch_types import BatchItemInput
from workflows.ids import batch_item_id, send_ids
from workflows.types import SendEmailInput

TAG = "Resend-compatible"
router = APIRouter(
    tags=[TAG], route_class=ResendRoute, responses=RESPONSES, dependencies=[API_KEY_SCHEME]
)


# Idempotency keys of this surface are apart from /v1's (see `send_key`).
SURFACE_SCOPE = "resend"
BATCH_EMAIL: TypeAdapter[ResendBatchEmail] = TypeAdapter(ResendBatchEmail)


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


def _batch_email(raw: Any, allowed: list[str]) -> ResendBatchEmail:
    """One email of a batch, validated as `POST /emails` validates one; `Answered` with
    Resend's error for it otherwise."""
    try:
        email = raw if isinstance(raw, ResendBatchEmail) else BATCH_EMAIL.validate_python(raw)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        raise Answered(validation_error(errors)) from None
    try:
        check_sender(email.sender, allowed, field="from")
    except SenderNotAllowed as exc:
        raise Answered(domain_error(exc)) from None
    return email


@router.post("/emails/batch", response_model=ResendBatchResponse, response_model_exclude_none=True)
async def send_batch(
    body: Annotated[BatchBody, Body()],
    response: Response,
    client: TemporalClientDep,
    settings: SettingsDep,
    caller: CallerDep,
    fingerprints: FingerprintKeysDep,
    idempotency_key: IdempotencyKey = None,
    validation: Annotated[
        BatchValidation, Header(alias="x-batch-validation")
    ] = BatchValidation.STRICT,
) -> ResendBatchResponse:
    """Send up to 100 emails (Resend's `POST /emails/batch`): one durable start, one provider
    call. `x-batch-validation: strict` refuses the batch for one invalid email; `permissive`
    sends the valid ones and lists the others in `errors` by their index."""
    tenant_id = caller.tenant_for(None)
    allowed = allowed_sender_domains(settings, caller)
    valid: list[ResendBatchEmail] = []
    refused: list[ResendBatchError] = []
    for index, raw in enumerate(body):
        try:
            valid.append(_batch_email(raw, allowed))
        except Answered as exc:
            message = str(exc.answer.body["message"])
            if validation == BatchValidation.STRICT:
                status, name = exc.answer.status, str(exc.answer.body["name"])
                raise Answered(error(status, name, f"emails[{index}]: {message}")) from None
            refused.append(ResendBatchError(index=index, message=message))
    errors = refused if validation == BatchValidation.PERMISSIVE else None
    if not valid:  # permissive, and every email refused: nothing to record
        return ResendBatchResponse(data=[], errors=errors)
    key = send_key(
        batch_kind(SendKind.EMAIL), idempotency_key, tenant_id=tenant_id, surface=SURFACE_SCOPE
    )
    items = []
    for position, email in enumerate(valid):
        email_id = batch_item_id(SendKind.EMAIL, key, position)
        items.append(BatchItemInput(email_id=email_id, message=message_of(email, email_id)))
    _, started = await sends.start_batch(
        client,
        key=key,
        kind=SendKind.EMAIL,
        items=items,
        tenant_id=tenant_id,
        policy=delivery_policy(settings, bulk(fairness_key(caller.key_id, tenant_id))),
        # The request as sent (every email, valid or not) and how it asked to be validated.
        fingerprint=fingerprints.fingerprint(
            {
                "emails": [
                    e.model_dump(mode="json", by_alias=True)
                    if isinstance(e, ResendBatchEmail)
                    else e
                    for e in body
                ],
                "validation": validation.value,
                "tenant_id": tenant_id,
            },
            idempotency_key,
        ),
        task_queue=settings.task_queue,
    )
    if started.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return ResendBatchResponse(
        data=[ResendSendResponse(id=item.email_id) for item in items], errors=errors
    )


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


@router.post(
    "/emails/{email_id}/cancel",
    response_model=ResendEmailRef,
    responses={202: {"description": "No worker answered: the cancel is recorded, not applied"}},
)
async def cancel_email(
    email_id: str, client: TemporalClientDep, caller: CallerDep, response: Response
) -> ResendEmailRef:
    """Cancel an email that has not gone out (Resend's `POST /emails/{id}/cancel`).

    200 once cancelled; 202 when no worker answered in time: the cancel is recorded and
    applied when the send's workflow next runs, if nothing has gone out by then (read
    `last_event` to see which)."""
    outcome = await sends.cancel_send(client, email_id, caller)
    if outcome.requested:
        response.status_code = 202
    return ResendEmailRef(id=email_id)
