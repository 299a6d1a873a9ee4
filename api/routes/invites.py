"""`/v1/invites`: create an invite (its `SendInviteEmail` workflow, class `Invite`), preview
it, read, accept, revoke.

The app's flow: `POST /v1/invites` (with its own `accept_url`, or without to get our
link and token) -> the invitee opens the link on the app's page -> the app's backend posts
the token to `POST /v1/invites/{id}/accept` -> 200 once, then 409; 410 once expired or
revoked; 404 for a wrong token.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, status

from activities.delivery_contract import SendKind
from activities.invite_tokens import PLACEHOLDER
from activities.render import INVITE_TEMPLATE, render_invite_emails
from activities.templating import TemplateError, Templates
from activities.types import EmailMessage
from api import invites
from api.accept import Ask, IntakeDep, Ticket, accept, settle
from api.answers import (
    ERRORS,
    INVITE_ERRORS,
    InviteAcceptance,
    InviteAccepted,
    InviteEmail,
    InvitePreview,
    InviteRevoked,
    InviteView,
    RenderedMessage,
)
from api.deps import CallerDep, SettingsDep, TemplatesDep, TemporalClientDep
from api.errors import InvalidField, NotConfigured
from api.links import check_link
from api.schemas import InviteAcceptBody, InviteCreate
from api.tenants import tenant_brand
from config import Settings
from workflows.types import EmailStatusResult, InviteInput, InviteState

router = APIRouter(prefix="/v1/invites", tags=["invites"])
DAY = 86400.0


async def resolve_locale(templates: Templates, requested: str | None) -> str:
    """The locale the invite template renders for `requested` (422 if none can)."""
    try:
        return await asyncio.to_thread(templates.resolve_locale, INVITE_TEMPLATE, requested)
    except TemplateError as err:
        raise InvalidField("locale", str(err)) from None


def _ask(body: InviteCreate) -> Ask:
    return Ask(
        SendKind.INVITE,
        body.model_dump(mode="json", by_alias=True),
        tenant=body.tenant_id,
        default_sender=True,
        send_at=body.send_at,
    )


async def _invite_input(
    body: InviteCreate, ticket: Ticket, settings: Settings, templates: Templates, *, token: bool
) -> InviteInput:
    """The workflow input of this request: its link (the app's, on a host its tenant allows,
    or ours with a token, issued if `token`), its locale and brand."""
    tenant_id, invite_id = ticket.tenant_id, ticket.id
    invite_token, digest = None, None
    if body.accept_url is not None:
        check_link(body.accept_url, settings, tenant_id, field="accept_url")
        link = body.accept_url
    else:
        link = invites.managed_link(settings, tenant_id, invite_id)
        if token:
            invite_token, digest = invites.issue_token(settings, invite_id)
    return InviteInput(
        invite_id=invite_id,
        to=str(body.email),
        sender=ticket.sender,
        tenant_name=body.tenant_name,
        inviter_name=body.inviter_name,
        accept_url=link,
        role=body.role,
        tenant_id=tenant_id,
        policy=ticket.policy,
        send_at=body.send_at.isoformat() if body.send_at else None,
        locale=await resolve_locale(templates, body.locale),
        brand=tenant_brand(settings, tenant_id),
        expires_in_seconds=body.expires_in_days * DAY,
        remind_after_seconds=body.remind_after_days * DAY if body.remind_after_days else None,
        invite_token=invite_token,
        token_digest=digest,
    )


@router.post(
    "", status_code=status.HTTP_202_ACCEPTED, response_model=InviteAccepted, responses=ERRORS
)
async def create_invite(
    body: InviteCreate, intake: IntakeDep, templates: TemplatesDep
) -> InviteAccepted:
    """Create an invite and queue its email durably; answers before any send."""

    async def build(ticket: Ticket) -> InviteInput:
        return await _invite_input(body, ticket, intake.settings, templates, token=True)

    accepted = await accept(intake, _ask(body), build)
    return InviteAccepted(
        invite_id=accepted.id,
        workflow_id=accepted.workflow_id,
        status_url=f"/v1/emails/{accepted.id}",
        invite_url=f"/v1/invites/{accepted.id}",
    )


def _rendered(message: EmailMessage) -> RenderedMessage:
    return RenderedMessage.model_validate(message, from_attributes=True)


@router.post("/preview", response_model=InvitePreview, responses=ERRORS)
async def preview_invite(
    body: InviteCreate, intake: IntakeDep, templates: TemplatesDep
) -> InvitePreview:
    """Render an invite's emails exactly as they would be sent; nothing is sent or started.

    The same `Idempotency-Key` as the create gives the same invite id (so the same link).
    """
    ticket = settle(intake, _ask(body))
    data = await _invite_input(body, ticket, intake.settings, templates, token=False)
    expires_at = datetime.now(UTC) + timedelta(seconds=data.expires_in_seconds)
    try:
        rendered = await asyncio.to_thread(
            render_invite_emails, templates, data.render_input(expires_at.isoformat())
        )
    except TemplateError as err:
        raise NotConfigured(f"the invite template cannot render: {err}") from None
    return InvitePreview(
        invite_id=ticket.id,
        locale=data.locale,
        link="app" if body.accept_url else "managed",
        invitation=_rendered(rendered.invitation),
        reminder=_rendered(rendered.reminder) if rendered.reminder else None,
        token_placeholder=None if body.accept_url else PLACEHOLDER,
    )


def _email_view(state: EmailStatusResult | None) -> InviteEmail | None:
    if state is None:
        return None
    return InviteEmail.model_validate({**asdict(state), "attempt_count": len(state.attempts)})


def _view(state: InviteState) -> dict[str, Any]:
    return {
        "invite_id": state.invite_id,
        "status": state.status,
        "email": state.to,
        "tenant_id": state.tenant_id,
        "role": state.role,
        "locale": state.locale,
        "link": state.link,
        "created_at": state.created_at,
        "expires_at": state.expires_at,
        "remind_at": state.remind_at,
        "accepted_at": state.accepted_at,
        "revoked_at": state.revoked_at,
        "expired_at": state.expired_at,
        "wrong_tokens": state.wrong_tokens,
        "invitation": _email_view(state.invitation),
        "reminder": _email_view(state.reminder),
        "reminder_skipped": state.reminder_skipped,
    }


@router.get("/{invite_id}", response_model=InviteView, responses=INVITE_ERRORS)
async def get_invite(invite_id: str, client: TemporalClientDep, caller: CallerDep) -> InviteView:
    """An invite: pending, accepted, expired or revoked, with its emails' delivery status."""
    record = await invites.read_invite_record(client, invite_id, caller)
    return InviteView.model_validate({**_view(record.state), "live": record.live})


@router.post("/{invite_id}/accept", response_model=InviteAcceptance, responses=INVITE_ERRORS)
async def accept_invite(
    invite_id: str,
    body: InviteAcceptBody,
    client: TemporalClientDep,
    settings: SettingsDep,
    caller: CallerDep,
) -> InviteAcceptance:
    """Accept an invite with its link's token: 200 once, then 409; 410 if expired or
    revoked; 404 for a wrong token (429 after too many)."""
    digest = invites.presented_digest(settings, body.token)
    state = await invites.accept_invite(client, invite_id, digest, caller)
    return InviteAcceptance.model_validate(state, from_attributes=True)


@router.delete("/{invite_id}", response_model=InviteRevoked, responses=INVITE_ERRORS)
async def revoke_invite(
    invite_id: str, client: TemporalClientDep, caller: CallerDep
) -> InviteRevoked:
    """Revoke an invite (its email is cancelled if it has not gone out); later accepts get
    410. Revoking again answers the same; 409 once accepted, 410 once expired."""
    state, cancelled = await invites.revoke_invite(client, invite_id, caller)
    return InviteRevoked.model_validate({**_view(state), "email_cancelled": cancelled})
