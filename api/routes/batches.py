"""`POST /v1/emails/batch`, `POST /v1/invites/batch`: up to 100 sends in one request, recorded
by one workflow start and sent in one provider call; `GET /v1/batches/{id}`: where it stands.

Each item keeps its own id: `GET /v1/emails/{id}`, its timeline and its delivery webhooks
work per item. The batch is validated as a whole before anything starts.
"""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Response, status

from activities.delivery_contract import SendKind
from activities.types import RenderInviteInput
from api import sends
from api.deps import (
    CallerDep,
    FingerprintKeysDep,
    IdempotencyKey,
    SettingsDep,
    TemporalClientDep,
)
from api.idempotency import FingerprintKeys, batch_kind, send_key
from api.policy import bulk, delivery_policy, fairness_key
from api.routes.emails import email_message
from api.routes.invites import accept_url
from api.schemas import (
    ERRORS,
    BatchAccepted,
    BatchItemAccepted,
    BatchStatus,
    EmailBatchCreate,
    InviteBatchCreate,
)
from api.tenants import Caller, allowed_sender_domains, check_sender, default_sender
from config import Settings
from workflows.batch_types import BatchItemInput, item_status
from workflows.ids import batch_item_id

router = APIRouter(prefix="/v1", tags=["batches"])


async def _start(
    kind: SendKind,
    items: list[BatchItemInput],
    body: EmailBatchCreate | InviteBatchCreate,
    *,
    key: str,
    caller: Caller,
    tenant_id: str | None,
    response: Response,
    client: TemporalClientDep,
    settings: Settings,
    fingerprints: FingerprintKeys,
    idempotency_key: str | None,
) -> BatchAccepted:
    """Start the batch's workflow (one start for every item), as bulk work of the tenant."""
    data, started = await sends.start_batch(
        client,
        key=key,
        kind=kind,
        items=items,
        tenant_id=tenant_id,
        policy=delivery_policy(settings, bulk(fairness_key(caller.key_id, tenant_id))),
        # The tenant as resolved, as for single sends: the same request under a tenant's key
        # and under an operator's naming that tenant is the same request.
        fingerprint=fingerprints.fingerprint(
            {**body.model_dump(mode="json", by_alias=True), "tenant_id": tenant_id},
            idempotency_key,
        ),
        task_queue=settings.task_queue,
    )
    if started.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return BatchAccepted(
        id=data.batch_id,
        workflow_id=started.workflow_id,
        status_url=f"/v1/batches/{data.batch_id}",
        items=[
            BatchItemAccepted(id=item.email_id, status_url=f"/v1/emails/{item.email_id}")
            for item in data.items
        ],
    )


def _default_sender(settings: Settings, caller: Caller, allowed: list[str], used: bool) -> str:
    """The sender of items that name none, checked against the caller's domains if used."""
    sender = default_sender(settings, caller)
    if used:
        check_sender(sender, allowed, field=None)
    return sender


@router.post(
    "/emails/batch",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=BatchAccepted,
    responses=ERRORS,
)
async def create_email_batch(
    body: EmailBatchCreate,
    response: Response,
    client: TemporalClientDep,
    settings: SettingsDep,
    caller: CallerDep,
    fingerprints: FingerprintKeysDep,
    idempotency_key: IdempotencyKey = None,
) -> BatchAccepted:
    """Queue up to 100 emails durably with one start; they go out in one provider call."""
    tenant_id = caller.tenant_for(body.emails[0].tenant_id)  # items share one (validated)
    allowed = allowed_sender_domains(settings, caller)
    for index, email in enumerate(body.emails):
        if email.sender:
            check_sender(email.sender, allowed, field=f"emails.{index}.from")
    fallback = _default_sender(settings, caller, allowed, any(not e.sender for e in body.emails))
    key = send_key(batch_kind(SendKind.EMAIL), idempotency_key, tenant_id=tenant_id)
    items = []
    for index, email in enumerate(body.emails):
        email_id = batch_item_id(SendKind.EMAIL, key, index)
        message = email_message(email, email_id, fallback)
        items.append(BatchItemInput(email_id=email_id, message=message))
    return await _start(
        SendKind.EMAIL,
        items,
        body,
        key=key,
        caller=caller,
        tenant_id=tenant_id,
        response=response,
        client=client,
        settings=settings,
        fingerprints=fingerprints,
        idempotency_key=idempotency_key,
    )


@router.post(
    "/invites/batch",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=BatchAccepted,
    responses=ERRORS,
)
async def create_invite_batch(
    body: InviteBatchCreate,
    response: Response,
    client: TemporalClientDep,
    settings: SettingsDep,
    caller: CallerDep,
    fingerprints: FingerprintKeysDep,
    idempotency_key: IdempotencyKey = None,
) -> BatchAccepted:
    """Create up to 100 invitations and queue their emails durably with one start; they are
    rendered once and go out in one provider call."""
    tenant_id = caller.tenant_for(body.invites[0].tenant_id)  # items share one (validated)
    sender = _default_sender(settings, caller, allowed_sender_domains(settings, caller), True)
    key = send_key(batch_kind(SendKind.INVITE), idempotency_key, tenant_id=tenant_id)
    items = []
    for index, invite in enumerate(body.invites):
        invite_id = batch_item_id(SendKind.INVITE, key, index)
        render = RenderInviteInput(
            invite_id=invite_id,
            to=str(invite.email),
            sender=sender,
            tenant_name=invite.tenant_name,
            inviter_name=invite.inviter_name,
            accept_url=accept_url(settings, invite_id),
            role=invite.role,
        )
        items.append(BatchItemInput(email_id=invite_id, invite=render))
    return await _start(
        SendKind.INVITE,
        items,
        body,
        key=key,
        caller=caller,
        tenant_id=tenant_id,
        response=response,
        client=client,
        settings=settings,
        fingerprints=fingerprints,
        idempotency_key=idempotency_key,
    )


@router.get("/batches/{batch_id}", response_model=BatchStatus, responses=ERRORS)
async def get_batch(batch_id: str, client: TemporalClientDep, caller: CallerDep) -> BatchStatus:
    """A batch: its provider call, how many items stand where, and each item's status."""
    batch = await sends.read_batch(client, batch_id, caller)
    state = batch.state
    counts: dict[str, int] = {}
    for item in state.items:
        counts[item.status] = counts.get(item.status, 0) + 1
    items = [item_status(state, index) for index in range(len(state.items))]
    return BatchStatus.model_validate(
        {
            "id": state.id,
            "workflow_id": batch.workflow_id,
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
