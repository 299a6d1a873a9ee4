"""`/v1/suppressions`: the caller's tenant's suppression list (Resend's API has the same at
`/suppressions`). A send to a listed address ends `suppressed` without a provider call."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response, status

from activities.suppressions import Suppression, SuppressionOrigin, SuppressionStore
from api.answers import ERRORS
from api.deps import CallerDep, SettingsDep, TemporalClientDep
from api.suppressions import (
    SuppressionPage,
    add_suppression,
    add_suppressions,
    get_suppression,
    list_suppressions,
    remove_suppression,
    remove_suppressions,
    store_of,
)
from api.suppressions_schemas import (
    SuppressionCreate,
    SuppressionOut,
    SuppressionPageOut,
    SuppressionsAdd,
    SuppressionsOut,
    SuppressionsRemove,
)
from api.tenants import Caller

router = APIRouter(prefix="/v1/suppressions", tags=["suppressions"], responses=ERRORS)
IdOrEmail = Annotated[str, Path(min_length=1, max_length=320)]


@router.post("", response_model=SuppressionOut, status_code=status.HTTP_201_CREATED)
async def add(body: SuppressionCreate, store: StoreDep, caller: CallerDep) -> SuppressionOut:
    """Suppress an address for the caller's tenant (listed already: its entry)."""
    entry = await add_suppression(store, caller, str(body.email))
    return SuppressionOut.model_validate(asdict(entry))


def _out(entries: list[Suppression]) -> SuppressionsOut:
    return SuppressionsOut(items=[SuppressionOut.model_validate(asdict(e)) for e in entries])


@router.post("/batch/add", response_model=SuppressionsOut)
async def add_batch(body: SuppressionsAdd, store: StoreDep, caller: CallerDep) -> SuppressionsOut:
    """Suppress 1 to 100 addresses at once, all or none (one listed already: its entry)."""
    return _out(await add_suppressions(store, caller, [str(e) for e in body.emails]))


@router.post("/batch/remove", response_model=SuppressionsOut)
async def remove_batch(
    body: SuppressionsRemove, store: StoreDep, caller: CallerDep
) -> SuppressionsOut:
    """Remove 1 to 100 entries by `emails` or `ids`: the entries removed (not listed: left
    out)."""
    return _out(await remove_suppressions(store, caller, body.keys))


@dataclass(frozen=True)
class PageQuery:
    """A page of the list: `origin` filter, `limit`, `after`/`before` an entry's id."""

    origin: SuppressionOrigin | None = None
    limit: Annotated[int, Query(ge=1, le=100)] = 20
    after: Annotated[str | None, Query(max_length=100)] = None
    before: Annotated[str | None, Query(max_length=100)] = None


async def page_of(query: PageQuery, store: SuppressionStore, caller: Caller) -> SuppressionPage:
    return await list_suppressions(
        store,
        caller,
        origin=query.origin,
        limit=query.limit,
        after=query.after,
        before=query.before,
    )


async def get_store(client: TemporalClientDep, settings: SettingsDep) -> SuppressionStore:
    return store_of(client, settings)


StoreDep = Annotated[SuppressionStore, Depends(get_store)]
PageDep = Annotated[PageQuery, Depends()]


@router.get("", response_model=SuppressionPageOut)
async def list_all(query: PageDep, store: StoreDep, caller: CallerDep) -> SuppressionPageOut:
    """The list, newest first; `after`/`before` an entry's id."""
    page = await page_of(query, store, caller)
    return SuppressionPageOut(
        items=[SuppressionOut.model_validate(asdict(e)) for e in page.entries],
        has_more=page.has_more,
    )


@router.get("/{id_or_email}", response_model=SuppressionOut)
async def get(id_or_email: IdOrEmail, store: StoreDep, caller: CallerDep) -> SuppressionOut:
    entry = await get_suppression(store, caller, id_or_email)
    return SuppressionOut.model_validate(asdict(entry))


@router.delete("/{id_or_email}", status_code=status.HTTP_204_NO_CONTENT)
async def remove(id_or_email: IdOrEmail, store: StoreDep, caller: CallerDep) -> Response:
    """Remove a suppression: the address is mailed again."""
    await remove_suppression(store, caller, id_or_email)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
