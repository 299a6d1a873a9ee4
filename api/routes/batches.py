"""`POST /v1/emails/batch`, `POST /v1/invites/batch`: up to 100 sends in one request, recorded
by one workflow start and sent in one provider call; `GET /v1/batches/{id}`: where it stands.

Each item keeps its own id: `GET /v1/emails/{id}`, its timeline and its delivery webhooks
work per item. The batch is validated as a whole before anything starts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, replace
from typing import Any

from fastapi import APIRouter, status

from activities.delivery_contract import SendKind
from activities.types import InviteToken, RenderInviteInput
from api.accept import Ask, Intake, IntakeDep, Ticket, accept
from api.answers import ERRORS, BatchAccepted, BatchItemAccepted, BatchStatus
from api.deps import CallerDep, TemplatesDep, TemporalClientDep
from api.invites import issue_token, managed_link
from api.reads import read_batch
from api.routes.emails import email_message
from api.routes.invites import DAY, resolve_locale
from api.schemas import EmailBatchCreate, InviteBatchCreate
from api.tenants import tenant_brand
from workflows.batch_types import BatchItemInput, SendBatchInput, item_status
from workflows.invite_batch_types import InviteBatchInput

router = APIRouter(prefix="/v1", tags=["batches"])
# How both batch routes answer: 202 once every item is recorded by one start.
ACCEPTING: dict[str, Any] = {
    "status_code": status.HTTP_202_ACCEPTED,
    "response_model": BatchAccepted,
    "responses": ERRORS,
}


async def _accept(
    intake: Intake,
    ask: Ask,
    item: Callable[[Ticket, int], BatchItemInput],
    count: int,
    batch: Callable[[Ticket, list[BatchItemInput]], SendBatchInput] = Ticket.batch,
) -> BatchAccepted:
    """Accept the batch (one start for every item, bulk work of the tenant) and answer it;
    `batch` makes the workflow's input of its items."""

    async def build(ticket: Ticket) -> SendBatchInput:
        return batch(ticket, [item(ticket, index) for index in range(count)])

    accepted = await accept(intake, ask, build)
    return BatchAccepted(
        id=accepted.id,
        workflow_id=accepted.workflow_id,
        status_url=f"/v1/batches/{accepted.id}",
        items=[
            BatchItemAccepted(id=item.email_id, status_url=f"/v1/emails/{item.email_id}")
            for item in accepted.data.items
        ],
    )


def _ask(kind: SendKind, body: EmailBatchCreate | InviteBatchCreate, tenant: str | None) -> Ask:
    return Ask(kind, body.model_dump(mode="json", by_alias=True), tenant=tenant, batch=True)


@router.post("/emails/batch", **ACCEPTING)
async def create_email_batch(body: EmailBatchCreate, intake: IntakeDep) -> BatchAccepted:
    """Queue up to 100 emails durably with one start; they go out in one provider call."""
    emails = body.emails
    ask = replace(
        _ask(SendKind.EMAIL, body, emails[0].tenant_id),  # items share one (validated)
        senders=[(e.sender, f"emails.{i}.from") for i, e in enumerate(emails) if e.sender],
        default_sender=any(not e.sender for e in emails),
    )

    def item(ticket: Ticket, index: int) -> BatchItemInput:
        email_id = ticket.item_id(index)
        message = email_message(emails[index], email_id, ticket.sender)
        return BatchItemInput(email_id=email_id, message=message)

    return await _accept(intake, ask, item, len(emails))


@router.post("/invites/batch", **ACCEPTING)
async def create_invite_batch(
    body: InviteBatchCreate, intake: IntakeDep, templates: TemplatesDep
) -> BatchAccepted:
    """Create up to 100 invitations with one start; their emails go out in one provider
    call, then each lives as a single invite does: `GET`, `accept` with the emailed token,
    `DELETE` (revoke) at `/v1/invites/{item id}`, its expiry and reminder."""
    invites = body.invites
    ask = replace(_ask(SendKind.INVITE, body, invites[0].tenant_id), default_sender=True)
    settings = intake.settings
    locale = await resolve_locale(templates, body.locale)
    tokens: list[InviteToken] = []
    digests: list[str] = []

    def item(ticket: Ticket, index: int) -> BatchItemInput:
        invite, invite_id = invites[index], ticket.item_id(index)
        token, digest = issue_token(settings, invite_id)
        tokens.append(token)
        digests.append(digest)
        render = RenderInviteInput(
            invite_id=invite_id,
            to=str(invite.email),
            sender=ticket.sender,
            tenant_name=invite.tenant_name,
            inviter_name=invite.inviter_name,
            accept_url=managed_link(settings, ticket.tenant_id, invite_id),
            role=invite.role,
        )
        return BatchItemInput(email_id=invite_id, invite=render)

    def batch(ticket: Ticket, items: list[BatchItemInput]) -> InviteBatchInput:
        return InviteBatchInput(
            **vars(ticket.batch(items)),
            locale=locale,
            brand=tenant_brand(settings, ticket.tenant_id),
            expires_in_seconds=body.expires_in_days * DAY,
            remind_after_seconds=body.remind_after_days * DAY if body.remind_after_days else None,
            tokens=tokens,
            token_digests=digests,
        )

    return await _accept(intake, ask, item, len(invites), batch)


@router.get("/batches/{batch_id}", response_model=BatchStatus, responses=ERRORS)
async def get_batch(batch_id: str, client: TemporalClientDep, caller: CallerDep) -> BatchStatus:
    """A batch: its provider call, how many items stand where, and each item's status."""
    batch = await read_batch(client, batch_id, caller)
    state = batch.state
    counts: dict[str, int] = {}
    for item in state.items:
        counts[item.status] = counts.get(item.status, 0) + 1
    items = [item_status(state, index) for index in range(len(state.items))]
    return BatchStatus.model_validate(
        {
            "id": state.id,
            "workflow_id": batch.workflow_id,
            "live": batch.live,
            "kind": state.kind,
            "status": state.status,
            "created_at": state.created_at,
            "updated_at": state.updated_at,
            "sent_at": state.sent_at,
            "tenant_id": state.tenant_id,
            "transport": state.transport,
            "total": len(state.items),
            "counts": counts,
            "attempt_count": max(state.attempt_count, len(state.attempts)),
            "attempts_omitted": state.attempts_omitted,
            "attempts": [asdict(attempt) for attempt in state.attempts],
            "last_error": asdict(state.last_error) if state.last_error else None,
            "not_after": state.not_after,
            "provider_may_have_accepted": state.provider_may_have_accepted,
            "runs": state.runs,
            "items": [
                {
                    "id": item.id,
                    "status": item.status,
                    "provider_message_id": item.provider_message_id,
                    "error": asdict(item.last_error) if item.last_error else None,
                    "status_url": f"/v1/emails/{item.id}",
                }
                for item in items
            ],
        }
    )
