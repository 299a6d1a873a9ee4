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
from api.accept import Ask, IntakeDep, Ticket, accept
from api.changes import cancel_send, reschedule_send
from api.deps import API_KEY_SCHEME, CallerDep, TemporalClientDep
from api.errors import InvalidField, InvalidRequest, SenderNotAllowed
from api.reads import read_send
from api.recorded import read_input
from api.resend_compat import listing, suppressions, unserved
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
from api.resend_compat.webhooks import router as webhooks_router
from api.tenants import allowed_sender_domains, check_sender
from workflows.batch_types import BatchItemInput, SendBatchInput
from workflows.types import SendEmailInput

TAG = "Resend-compatible"
router = APIRouter(
    tags=[TAG], route_class=ResendRoute, responses=RESPONSES, dependencies=[API_KEY_SCHEME]
)


# Idempotency keys of this surface are apart from /v1's (see `send_key`).
SURFACE_SCOPE = "resend"
BATCH_EMAIL: TypeAdapter[ResendBatchEmail] = TypeAdapter(ResendBatchEmail)


@router.post("/emails", response_model=ResendSendResponse)
async def send_email(body: ResendSendRequest, intake: IntakeDep) -> ResendSendResponse:
    """Send an email (Resend's `POST /emails`): answers once the send is durably recorded."""
    # A tenant's key sends for its tenant, an operator's for none (Resend has no such field).
    ask = Ask(
        SendKind.EMAIL,
        body.ask_payload(),
        senders=[(body.sender, "from")],
        send_at=body.scheduled_at,
        schedule_rule=schedule_problem,
        schedule_field="scheduled_at",
        surface=SURFACE_SCOPE,
    )

    async def build(ticket: Ticket) -> SendEmailInput:
        return SendEmailInput(
            email_id=ticket.id,
            message=message_of(body, ticket.id),
            tenant_id=ticket.tenant_id,
            policy=ticket.policy,
            send_at=body.scheduled_at.isoformat() if body.scheduled_at else None,
            accepted_at=ticket.accepted_at,
        )

    try:
        accepted = await accept(intake, ask, build)
    except InvalidField as exc:  # `scheduled_at`: answered as Resend answers a bad field
        problem = {"type": "value_error", "loc": ("body", exc.field), "msg": exc.detail}
        raise RequestValidationError([problem]) from None
    return ResendSendResponse(id=accepted.id)


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
    intake: IntakeDep,
    validation: Annotated[
        BatchValidation, Header(alias="x-batch-validation")
    ] = BatchValidation.STRICT,
) -> ResendBatchResponse:
    """Send up to 100 emails (Resend's `POST /emails/batch`): one durable start, one provider
    call. `x-batch-validation: strict` refuses the batch for one invalid email; `permissive`
    sends the valid ones and lists the others in `errors` by their index."""
    allowed = allowed_sender_domains(intake.settings, intake.caller)
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
    # The request as sent (every email, valid or not) and how it asked to be validated.
    emails = [
        e.model_dump(mode="json", by_alias=True) if isinstance(e, ResendBatchEmail) else e
        for e in body
    ]
    ask = Ask(
        SendKind.EMAIL,
        {"emails": emails, "validation": validation.value},
        batch=True,
        surface=SURFACE_SCOPE,
    )

    async def build(ticket: Ticket) -> SendBatchInput:
        ids = [ticket.item_id(position) for position in range(len(valid))]
        return ticket.batch(
            [
                BatchItemInput(email_id=email_id, message=message_of(email, email_id))
                for email_id, email in zip(ids, valid, strict=True)
            ]
        )

    accepted = await accept(intake, ask, build)
    return ResendBatchResponse(
        data=[ResendSendResponse(id=item.email_id) for item in accepted.data.items], errors=errors
    )


@router.get("/emails/{email_id}", response_model=ResendEmail)
async def get_email(email_id: str, client: TemporalClientDep, caller: CallerDep) -> ResendEmail:
    """Retrieve an email (Resend's `GET /emails/{id}`), `last_event` in Resend's words."""
    # The status read first: it refuses another tenant's send before its input is read.
    send = await read_send(client, email_id, caller)
    data = await read_input(client, email_id, caller)
    return email_object(data, send.state)


@router.patch("/emails/{email_id}", response_model=ResendEmailRef)
async def update_email(
    email_id: str, body: ResendUpdateRequest, client: TemporalClientDep, caller: CallerDep
) -> ResendEmailRef:
    """Reschedule a scheduled email (Resend's `PATCH /emails/{id}`)."""
    if body.id is not None and body.id != email_id:
        raise InvalidRequest("the `id` in the body is not the email of the path")
    await reschedule_send(client, email_id, body.scheduled_at, caller)
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
    outcome = await cancel_send(client, email_id, caller)
    if outcome.requested:
        response.status_code = 202
    return ResendEmailRef(id=email_id)


router.include_router(webhooks_router)
router.include_router(listing.router)  # `GET /emails`
router.include_router(suppressions.router)  # `/suppressions`
# Last: every other path of the surface, in Resend's format.
router.include_router(
    unserved.answering_the_rest([router, listing.router, suppressions.router, webhooks_router])
)
