"""`POST /v1/invites`: accept an invitation and start its `SendInviteEmail` workflow."""

from __future__ import annotations

import secrets
from urllib.parse import urlencode

from fastapi import APIRouter, Response, status

from activities.delivery_contract import SendKind
from api import sends
from api.deps import (
    CallerDep,
    FingerprintKeysDep,
    IdempotencyKey,
    SettingsDep,
    TemporalClientDep,
)
from api.idempotency import send_key
from api.policy import delivery_policy
from api.schemas import ERRORS, InviteAccepted, InviteCreate
from api.tenants import allowed_sender_domains, check_sender, default_sender
from workflows.ids import send_ids
from workflows.types import SendInviteEmailInput

router = APIRouter(prefix="/v1/invites", tags=["invites"])


@router.post(
    "", status_code=status.HTTP_202_ACCEPTED, response_model=InviteAccepted, responses=ERRORS
)
async def create_invite(
    body: InviteCreate,
    response: Response,
    client: TemporalClientDep,
    settings: SettingsDep,
    caller: CallerDep,
    fingerprints: FingerprintKeysDep,
    idempotency_key: IdempotencyKey = None,
) -> InviteAccepted:
    """Create an invitation and queue its email durably; answers before any send."""
    tenant_id = caller.tenant_for(body.tenant_id)
    sender = default_sender(settings, caller)
    check_sender(sender, allowed_sender_domains(settings, caller), field=None)
    invite_id, workflow_id = send_ids(
        SendKind.INVITE, send_key(SendKind.INVITE, idempotency_key, tenant_id=tenant_id)
    )
    # The token is the only secret of the invite: unguessable, and never the workflow id.
    token = secrets.token_urlsafe(32)
    accept_url = f"{settings.app_base_url.rstrip('/')}/invites/accept?" + urlencode(
        {"invite": invite_id, "token": token}
    )
    data = SendInviteEmailInput(
        invite_id=invite_id,
        to=str(body.email),
        sender=sender,
        tenant_name=body.tenant_name,
        inviter_name=body.inviter_name,
        accept_url=accept_url,
        role=body.role,
        tenant_id=tenant_id,
        policy=delivery_policy(settings),
        send_at=body.send_at.isoformat() if body.send_at else None,
    )
    started = await sends.start_send(
        client,
        data,
        workflow_id=workflow_id,
        fingerprint=fingerprints.fingerprint(
            {**body.model_dump(mode="json", by_alias=True), "tenant_id": tenant_id},
            idempotency_key,
        ),
        task_queue=settings.task_queue,
    )
    if started.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return InviteAccepted(
        invite_id=invite_id, workflow_id=workflow_id, status_url=f"/v1/emails/{invite_id}"
    )
