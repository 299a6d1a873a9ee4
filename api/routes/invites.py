"""`POST /v1/invites`: accept an invitation and start its `SendInviteEmail` workflow."""

from __future__ import annotations

import secrets
from urllib.parse import urlencode

from fastapi import APIRouter, Response, status

from api.deps import CallerDep, ClientDep, IdempotencyKey, SettingsDep
from api.schemas import ERRORS, InviteAccepted, InviteCreate
from api.temporal import accept_send, new_key
from workflows.ids import INVITE_ID_PREFIX, KIND_INVITE
from workflows.send_invite_email import SendInviteEmail
from workflows.types import SendInviteEmailInput

from .policy import delivery_policy

router = APIRouter(prefix="/v1/invites", tags=["invites"])


@router.post(
    "", status_code=status.HTTP_202_ACCEPTED, response_model=InviteAccepted, responses=ERRORS
)
async def create_invite(
    body: InviteCreate,
    response: Response,
    client: ClientDep,
    settings: SettingsDep,
    caller: CallerDep,
    idempotency_key: IdempotencyKey = None,
) -> InviteAccepted:
    """Create an invitation and queue its email durably; answers before any send."""
    key = new_key(caller.scope, KIND_INVITE, idempotency_key)
    invite_id = INVITE_ID_PREFIX + key
    workflow_id = f"invite-{key}"
    # The token is the only secret of the invite: unguessable, and never the workflow id.
    token = secrets.token_urlsafe(32)
    accept_url = f"{settings.app_base_url.rstrip('/')}/invites/accept?" + urlencode(
        {"invite": invite_id, "token": token}
    )
    await accept_send(
        client,
        SendInviteEmail.run,
        SendInviteEmailInput(
            invite_id=invite_id,
            to=str(body.email),
            sender=settings.email_from,
            tenant_name=body.tenant_name,
            inviter_name=body.inviter_name,
            accept_url=accept_url,
            role=body.role,
            tenant_id=body.tenant_id,
            policy=delivery_policy(settings),
            send_at=body.send_at.isoformat() if body.send_at else None,
        ),
        kind=KIND_INVITE,
        workflow_id=workflow_id,
        body=body,
        idempotency_key=idempotency_key,
        task_queue=settings.task_queue,
        response=response,
    )
    return InviteAccepted(
        invite_id=invite_id, workflow_id=workflow_id, status_url=f"/v1/emails/{invite_id}"
    )
