"""What every baseline shares: the request body and the provider call the seeds make."""

from __future__ import annotations

import logging
import os

import resend
from pydantic import BaseModel, EmailStr

log = logging.getLogger("bench.baseline")

# resend reads RESEND_API_URL and RESEND_API_KEY at import; set again so a late env works.
resend.api_url = os.environ.get("RESEND_API_URL", resend.api_url)
resend.api_key = os.environ.get("RESEND_API_KEY", "")
EMAIL_FROM = os.environ.get("EMAIL_FROM", "Acme <invites@bench.example>")
APP_BASE_URL = os.environ.get("APP_BASE_URL", "http://localhost:8000")


class InviteRequest(BaseModel):
    """Same body as durable-mail's `POST /v1/invites`."""

    email: EmailStr
    tenant_name: str
    inviter_name: str


def invite_params(invite: InviteRequest) -> resend.Emails.SendParams:
    accept_url = f"{APP_BASE_URL}/invites/accept?email={invite.email}"
    return {
        "from": EMAIL_FROM,
        "to": [invite.email],
        "subject": f"{invite.inviter_name} invited you to {invite.tenant_name}",
        "html": f'<p>{invite.inviter_name} invited you. <a href="{accept_url}">Accept</a></p>',
        "text": f"{invite.inviter_name} invited you to {invite.tenant_name}: {accept_url}",
        "tags": [{"name": "kind", "value": "invite"}],
    }


def send_invite_email(invite: InviteRequest) -> None:
    """Blocking send with the sync SDK (requests, one connection per call); raises on failure.

    In a handler that sends before answering, a failure becomes a 500 the caller sees.
    """
    resend.Emails.send(invite_params(invite))


def send_and_log(invite: InviteRequest) -> None:
    """Fire-and-forget send: the seeds "catch and log", so a failed email is just gone."""
    try:
        send_invite_email(invite)
    except Exception:
        log.exception("send failed")


async def send_and_log_async(invite: InviteRequest) -> None:
    """Fire-and-forget send with the SDK's async client (httpx, a new client per call)."""
    try:
        await resend.Emails.send_async(invite_params(invite))
    except Exception:
        log.exception("send failed")
