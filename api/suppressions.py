"""A tenant's suppression list, for the API's routes (both surfaces): add, list a page,
read and remove, scoped to the caller's tenant. Lists are per tenant: an operator's key
(whose sends have no tenant, and are not checked) is refused with a clear 400. Raises domain
errors; `activities.suppressions` holds the store.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from temporalio.client import Client, WorkflowUpdateRPCTimeoutOrCancelledError

from activities.suppressions import (
    Suppression,
    SuppressionListFull,
    SuppressionOrigin,
    SuppressionStore,
    canonical_address,
)
from api.errors import InvalidRequest, NotConfirmed, NotFound
from api.temporal_errors import temporal_errors
from api.tenants import Caller
from config import Settings

NO_SUCH_SUPPRESSION = "no suppression with this id or address"
NOT_CONFIRMED = (
    "no worker answered in time: the change to the suppression list is neither confirmed "
    "nor refused, and may still be applied when a worker runs. Read the list before retrying "
    "(adding or removing again is harmless)."
)
NO_TENANT = (
    "a suppression list belongs to a tenant: use a tenant's API key (sends made with an "
    "operator key have no tenant and no list)"
)


@dataclass(frozen=True)
class SuppressionPage:
    entries: list[Suppression]
    has_more: bool


def _tenant(caller: Caller) -> str:
    tenant_id = caller.tenant_for(None)
    if tenant_id is None:
        raise InvalidRequest(NO_TENANT)
    return tenant_id


def store_of(client: Client, settings: Settings) -> SuppressionStore:
    return SuppressionStore(client, settings.task_queue)


@contextmanager
def _list_change() -> Iterator[None]:
    """A change of the list: Temporal's errors, a full list and an unconfirmed update as the
    domain errors they stand for."""
    with temporal_errors():
        try:
            yield
        except SuppressionListFull as exc:
            raise InvalidRequest(str(exc)) from None
        except WorkflowUpdateRPCTimeoutOrCancelledError:
            raise NotConfirmed(NOT_CONFIRMED) from None


async def add_suppression(store: SuppressionStore, caller: Caller, email: str) -> Suppression:
    """Add an address by hand (an address already listed answers its entry)."""
    with _list_change():
        return await store.add(_tenant(caller), email, SuppressionOrigin.MANUAL)


async def add_suppressions(
    store: SuppressionStore, caller: Caller, emails: list[str]
) -> list[Suppression]:
    """Several addresses by hand, in one update of the list (each address once)."""
    with _list_change():
        return await store.add_many(_tenant(caller), emails)


async def remove_suppressions(
    store: SuppressionStore, caller: Caller, ids_or_emails: list[str]
) -> list[Suppression]:
    """Several entries in one update; those that were listed (misses are left out)."""
    with _list_change():
        return await store.remove_many(_tenant(caller), ids_or_emails)


async def list_suppressions(
    store: SuppressionStore,
    caller: Caller,
    *,
    origin: SuppressionOrigin | None = None,
    limit: int = 20,
    after: str | None = None,
    before: str | None = None,
) -> SuppressionPage:
    """A page, newest first; `after`/`before` an entry's id, as `GET /emails` pages."""
    if after and before:
        raise InvalidRequest("give `after` or `before`, not both")
    with temporal_errors():
        entries = await store.entries(_tenant(caller))
    if origin is not None:
        entries = [e for e in entries if e.origin == origin]
    ids = [e.id for e in entries]
    cursor = after or before
    if cursor is not None and cursor not in ids:
        raise InvalidRequest("the cursor is not a suppression of this list")
    if after:
        rest = entries[ids.index(after) + 1 :]
        return SuppressionPage(rest[:limit], len(rest) > limit)
    if before:
        newer = entries[: ids.index(before)]
        return SuppressionPage(newer[-limit:], len(newer) > limit)
    return SuppressionPage(entries[:limit], len(entries) > limit)


async def get_suppression(store: SuppressionStore, caller: Caller, id_or_email: str) -> Suppression:
    with temporal_errors():
        entries = await store.entries(_tenant(caller))
    for entry in entries:
        if id_or_email in (entry.id, entry.email) or _same_address(id_or_email, entry.email):
            return entry
    raise NotFound(NO_SUCH_SUPPRESSION)


async def remove_suppression(
    store: SuppressionStore, caller: Caller, id_or_email: str
) -> Suppression:
    with _list_change():
        removed = await store.remove(_tenant(caller), id_or_email)
    if removed is None:
        raise NotFound(NO_SUCH_SUPPRESSION)
    return removed


def _same_address(given: str, listed: str) -> bool:
    return "@" in given and canonical_address(given) == listed
