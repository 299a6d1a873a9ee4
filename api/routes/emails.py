"""`/v1/emails`: send a caller-composed email; list, read, trace and cancel the caller's sends."""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from activities.delivery_contract import SendKind, correlation_tags
from activities.templating import RenderedEmail, TemplateError, Templates
from activities.types import Brand, EmailMessage, EmailTag
from api.accept import Ask, IntakeDep, Ticket, accept
from api.answers import (
    ERRORS,
    CancelAccepted,
    EmailAccepted,
    EmailPage,
    EmailStatus,
    EmailTimeline,
)
from api.changes import cancel_send
from api.deps import CallerDep, TemplatesDep, TemporalClientDep
from api.errors import InvalidField
from api.fields import MAX_CONTENT_BYTES, TenantId
from api.links import check_template_links
from api.listing import list_sends
from api.reads import read_send
from api.schemas import EmailCreate
from api.tenants import tenant_brand
from api.timeline import timeline
from workflows.status import SendStatus
from workflows.types import SendEmailInput

router = APIRouter(prefix="/v1/emails", tags=["emails"])


def _as_list(value: str | list[str] | None) -> list[str]:
    if value is None:
        return []
    return [str(value)] if isinstance(value, str) else [str(v) for v in value]


def email_message(
    body: EmailCreate, email_id: str, default_sender: str, rendered: RenderedEmail | None = None
) -> EmailMessage:
    """The message exactly as the provider gets it, with the tags its webhooks come back by.

    `rendered`: the body's template, rendered (its subject unless the body gives one).
    """
    # The schema requires a subject without a template, and a template renders one.
    subject = body.subject or (rendered.subject if rendered else "")
    return EmailMessage(
        sender=body.sender or default_sender,
        to=_as_list(body.to),
        subject=subject,
        html=rendered.html if rendered else body.html,
        text=rendered.text if rendered else body.text,
        reply_to=_as_list(body.reply_to),
        tags=[
            *(EmailTag(t.name, t.value) for t in body.tags or []),
            *correlation_tags(SendKind.EMAIL, email_id),
        ],
    )


async def _render(body: EmailCreate, templates: Templates, brand: Brand) -> RenderedEmail:
    """The named template in the asked locale; what cannot render is the caller's 422."""
    assert body.template is not None
    name = body.template

    def render() -> RenderedEmail:
        locale = templates.resolve_locale(name, body.locale)
        return templates.render(name, locale, body.variables or {}, brand)

    try:
        rendered = await asyncio.to_thread(render)
    except TemplateError as err:
        raise InvalidField("template", str(err)) from None
    size = sum(len(part.encode()) for part in (rendered.html, rendered.text) if part is not None)
    if size > MAX_CONTENT_BYTES:
        raise InvalidField("variables", f"the rendered email exceeds {MAX_CONTENT_BYTES} bytes")
    return rendered


@router.post(
    "", status_code=status.HTTP_202_ACCEPTED, response_model=EmailAccepted, responses=ERRORS
)
async def create_email(
    body: EmailCreate, intake: IntakeDep, templates: TemplatesDep
) -> EmailAccepted:
    """Queue one email durably and answer at once; the worker sends it exactly once.

    With `template`, the API renders it now (its bytes are then fixed in the workflow input).
    """
    settings = intake.settings
    ask = Ask(
        SendKind.EMAIL,
        body.model_dump(mode="json", by_alias=True),
        tenant=body.tenant_id,
        senders=[(body.sender, "from")] if body.sender else [],
        default_sender=not body.sender,
        send_at=body.send_at,
    )

    async def build(ticket: Ticket) -> SendEmailInput:
        check_template_links(body.variables, settings, ticket.tenant_id)
        brand = tenant_brand(settings, ticket.tenant_id)
        rendered = await _render(body, templates, brand) if body.template else None
        return SendEmailInput(
            email_id=ticket.id,
            message=email_message(body, ticket.id, ticket.sender, rendered),
            tenant_id=ticket.tenant_id,
            policy=ticket.policy,
            send_at=body.send_at.isoformat() if body.send_at else None,
            accepted_at=ticket.accepted_at,
        )

    accepted = await accept(intake, ask, build)
    return EmailAccepted(
        id=accepted.id, workflow_id=accepted.workflow_id, status_url=f"/v1/emails/{accepted.id}"
    )


@router.get("", response_model=EmailPage, responses=ERRORS)
async def list_emails(
    client: TemporalClientDep,
    caller: CallerDep,
    email_status: Annotated[SendStatus | None, Query(alias="status")] = None,
    kind: SendKind | None = None,
    tenant_id: TenantId | None = None,
    page_token: Annotated[str | None, Query(max_length=4096)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> EmailPage:
    """List the caller's sends, newest first, by status, kind or tenant (eventually consistent)."""
    return await list_sends(
        client,
        caller,
        status=email_status,
        kind=kind,
        tenant_id=tenant_id,
        page_token=page_token,
        limit=limit,
    )


@router.get(
    "/{email_id}/events",
    response_model=EmailTimeline,
    response_model_exclude_none=True,
    responses=ERRORS,
)
async def get_email_events(
    email_id: str, client: TemporalClientDep, caller: CallerDep
) -> EmailTimeline:
    """Timeline of one send: accepted, each attempt, sent, each delivery event, with times."""
    send = await read_send(client, email_id, caller)
    return EmailTimeline(
        id=email_id,
        workflow_id=send.workflow_id,
        status=send.state.status,
        events=timeline(send.state),
    )


CANCEL_REQUESTED = (
    "cancel requested: no worker answered at once. The request is recorded and takes effect "
    "when the send's worker next runs, if the email has not gone out by then; "
    "GET /v1/emails/{id} shows the outcome (cancel_requested_at, status)."
)


@router.delete(
    "/{email_id}",
    response_model=CancelAccepted,
    response_model_exclude_none=True,
    responses={**ERRORS, 202: {"model": CancelAccepted, "description": "Cancel requested"}},
)
async def cancel_email(
    email_id: str, response: Response, client: TemporalClientDep, caller: CallerDep
) -> CancelAccepted:
    """Cancel a send that has not gone out (scheduled or waiting): 200 once cancelled, 202
    when only requested (no worker answered; applied when one runs), 409 once it has gone."""
    outcome = await cancel_send(client, email_id, caller)
    if outcome.requested:
        response.status_code = status.HTTP_202_ACCEPTED
        return CancelAccepted(id=email_id, status=outcome.status, detail=CANCEL_REQUESTED)
    return CancelAccepted(id=email_id, status=outcome.status)


@router.get("/{email_id}", response_model=EmailStatus, responses=ERRORS)
async def get_email(email_id: str, client: TemporalClientDep, caller: CallerDep) -> EmailStatus:
    """Status of an email or invite: the attempts (first and latest, all counted), the last
    error and the provider id; `live: false` when no worker answered (what Temporal knows)."""
    send = await read_send(client, email_id, caller)
    state = send.state
    return EmailStatus.model_validate(
        {
            **asdict(state),
            "workflow_id": send.workflow_id,
            "live": send.live,
            # Results of sends finished before the count existed hold every attempt.
            "attempt_count": max(state.attempt_count, len(state.attempts)),
        }
    )
