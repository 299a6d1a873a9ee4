"""Resend's suppressions API at the root: `POST /suppressions {email}`, `GET /suppressions`
(filter `origin`, cursor pages), `GET` and `DELETE /suppressions/{id or email}`.

The caller's tenant's list (`api.suppressions`): a send to a listed address is accepted,
then ends `suppressed` without a provider call (`last_event` `suppressed`).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from activities.suppressions import SuppressionOrigin
from api.deps import CallerDep
from api.errors import InvalidRequest
from api.fields import Address
from api.resend_compat.errors import ResendRoute
from api.resend_compat.schemas import ResendModel
from api.routes.suppressions import IdOrEmail, PageDep, StoreDep, page_of
from api.suppressions import (
    add_suppression,
    add_suppressions,
    get_suppression,
    remove_suppression,
    remove_suppressions,
)

# Included by `routes.router` (its tag, key scheme and error answers).
router = APIRouter(route_class=ResendRoute)


class ResendAddSuppression(ResendModel):
    email: Address


class ResendSuppressionRef(BaseModel):
    object: Literal["suppression"] = "suppression"
    id: str


# Resend's batch limit: 1 to 100 addresses or ids per request.
MAX_BATCH = 100


class ResendBatchAdd(ResendModel):
    emails: list[Address] = Field(min_length=1, max_length=MAX_BATCH)


class ResendBatchRemove(ResendModel):
    emails: list[Address] | None = Field(default=None, min_length=1, max_length=MAX_BATCH)
    ids: list[str] | None = Field(default=None, min_length=1, max_length=MAX_BATCH)


class ResendSuppressionItem(BaseModel):
    id: str
    email: str
    origin: SuppressionOrigin
    source_id: str | None
    created_at: str


class ResendSuppression(ResendSuppressionItem):
    object: Literal["suppression"] = "suppression"


class ResendSuppressionList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ResendSuppressionItem]
    has_more: bool


class ResendSuppressionRemoved(ResendSuppressionRef):
    deleted: bool = True


class ResendBatchAdded(BaseModel):
    data: list[ResendSuppressionRef]


class ResendBatchRemoved(BaseModel):
    data: list[ResendSuppressionRemoved]


@router.post("/suppressions/batch/add", response_model=ResendBatchAdded)
async def batch_add(body: ResendBatchAdd, store: StoreDep, caller: CallerDep) -> ResendBatchAdded:
    """Suppress up to 100 addresses in one request (one update of the tenant's list)."""
    added = await add_suppressions(store, caller, [str(email) for email in body.emails])
    return ResendBatchAdded(data=[ResendSuppressionRef(id=entry.id) for entry in added])


@router.post("/suppressions/batch/remove", response_model=ResendBatchRemoved)
async def batch_remove(
    body: ResendBatchRemove, store: StoreDep, caller: CallerDep
) -> ResendBatchRemoved:
    """Remove up to 100 suppressions by address or by id (not both); those listed answer."""
    if (body.emails is None) == (body.ids is None):
        raise InvalidRequest("give `emails` or `ids`, not both")
    keys = [str(email) for email in body.emails] if body.emails else body.ids or []
    removed = await remove_suppressions(store, caller, keys)
    return ResendBatchRemoved(data=[ResendSuppressionRemoved(id=entry.id) for entry in removed])


@router.post("/suppressions", response_model=ResendSuppressionRef)
async def add(
    body: ResendAddSuppression, store: StoreDep, caller: CallerDep
) -> ResendSuppressionRef:
    """Suppress an address (Resend's `POST /suppressions`); listed already: its entry."""
    entry = await add_suppression(store, caller, str(body.email))
    return ResendSuppressionRef(id=entry.id)


@router.get("/suppressions", response_model=ResendSuppressionList)
async def list_all(query: PageDep, store: StoreDep, caller: CallerDep) -> ResendSuppressionList:
    """List suppressions, newest first (Resend's `GET /suppressions`)."""
    page = await page_of(query, store, caller)
    return ResendSuppressionList.model_validate(
        {"data": [asdict(e) for e in page.entries], "has_more": page.has_more}
    )


@router.get("/suppressions/{id_or_email}", response_model=ResendSuppression)
async def get(id_or_email: IdOrEmail, store: StoreDep, caller: CallerDep) -> ResendSuppression:
    """A suppression by its id or its address (Resend's `GET /suppressions/{id}`)."""
    entry = await get_suppression(store, caller, id_or_email)
    return ResendSuppression.model_validate(asdict(entry))


@router.delete("/suppressions/{id_or_email}", response_model=ResendSuppressionRemoved)
async def remove(
    id_or_email: IdOrEmail, store: StoreDep, caller: CallerDep
) -> ResendSuppressionRemoved:
    """Remove a suppression: the address is mailed again (Resend's `DELETE`)."""
    entry = await remove_suppression(store, caller, id_or_email)
    return ResendSuppressionRemoved(id=entry.id)
