"""`/v1/webhook-endpoints`: the webhook endpoints API in our format (the same routes as
Resend's `/webhooks`, `api.resend_compat.webhooks`), and what became of an email's events:
`GET /v1/emails/{id}/webhook-deliveries` (each event to each endpoint, attempts included)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter
from fastapi.routing import APIRoute

from api.deps import API_KEY_SCHEME, CallerDep, TemporalClientDep
from api.resend_compat.webhooks import TAG, routes
from api.webhook_endpoints import email_deliveries

router = APIRouter(dependencies=[API_KEY_SCHEME])
router.include_router(routes(APIRoute, "/v1/webhook-endpoints", tags=[TAG]))


@router.get("/v1/emails/{email_id}/webhook-deliveries", tags=[TAG])
async def webhook_deliveries(
    email_id: str, client: TemporalClientDep, caller: CallerDep
) -> dict[str, Any]:
    """Each of an email's events to each of your endpoints: status, attempts, last answer."""
    found = await email_deliveries(client, caller, email_id)
    return {"object": "list", "data": [asdict(d) for d in found]}
