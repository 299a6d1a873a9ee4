"""Resend's `GET /emails`: the caller's emails, newest first, a cursor page at a time.

Built on the `/v1` listing (`api.listing`, Temporal's visibility store, so eventually
consistent): the same sends, the same tenancy. Each email's fields come from its recorded
input (what `GET /emails/{id}` reads), its `last_event` from the status the server holds;
a batch's emails are read by their ids (`GET /emails/{id}`), not listed (as on `/v1`).
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Query
from temporalio.client import Client, WorkflowExecution

from api.deps import CallerDep, TemporalClientDep
from api.errors import InvalidRequest
from api.listing import list_by_cursor
from api.recorded import ended_early, known_state, recorded_input
from api.resend_compat.errors import ResendRoute
from api.resend_compat.mapping import email_object
from api.resend_compat.schemas import ResendEmailList, ResendListedEmail
from api.temporal_errors import temporal_errors
from workflows.types import InviteInput, SendEmailInput

# Included by `routes.router` (its tag, key scheme and error answers).
router = APIRouter(route_class=ResendRoute)
# Recorded inputs read at once for one page (each is one history read).
READS_AT_ONCE = 10


async def _listed(client: Client, execution: WorkflowExecution) -> ResendListedEmail | None:
    """One email of the page; None if its input is not a single send's (never listed)."""
    with temporal_errors():
        data = await recorded_input(client, execution.id)
    if not isinstance(data, SendEmailInput | InviteInput):
        return None
    state = ended_early(await known_state(execution.id, execution), execution.status, live=False)
    # `created_at` is the acceptance's time (the workflow's own is its first task's, a
    # few ms later); `scheduled_at` the recorded one.
    state.send_at = state.send_at or data.send_at
    email = email_object(data, state)
    return ResendListedEmail.model_validate(email.model_dump(by_alias=True))


@router.get("/emails", response_model=ResendEmailList)
async def list_emails(
    client: TemporalClientDep,
    caller: CallerDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    after: Annotated[str | None, Query(max_length=200)] = None,
    before: Annotated[str | None, Query(max_length=200)] = None,
) -> ResendEmailList:
    """List emails (Resend's `GET /emails`), newest first: `after` an email id for the
    older ones that follow it, `before` one for the newer ones; `has_more` says whether
    more lie that way."""
    if after and before:
        raise InvalidRequest("give `after` or `before`, not both")
    page = await list_by_cursor(client, caller, limit=limit, after=after, before=before)
    gate = asyncio.Semaphore(READS_AT_ONCE)

    async def read(execution: WorkflowExecution) -> ResendListedEmail | None:
        async with gate:
            return await _listed(client, execution)

    emails = await asyncio.gather(*(read(e) for e in page.executions))
    return ResendEmailList(data=[e for e in emails if e is not None], has_more=page.has_more)
