"""A tenant's suppression list: its shapes, the client calls that read and change it (the
API's, and the activities' of the delivery workflows), and the check before a provider call.

The list lives in one entity workflow per tenant (`workflows.suppressions`, id
`suppressions-<tenant>`): Temporal is our only store. Updates add and remove, queries read;
the API and the activities here are its only callers. Addresses are compared in one
canonical form (`canonical_address`), so `Ann@Example.COM` and `ann@example.com` are one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from email.utils import parseaddr
from enum import StrEnum
from typing import Any, ClassVar

from temporalio import activity
from temporalio.client import (
    Client,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
)
from temporalio.common import RetryPolicy, WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

# One list holds at most this many addresses. An entry is at most ~460 bytes as JSON (a
# 320-character address, its id, origin and time), so a full list is under 1 MB in the
# payload that carries it across a continue-as-new: half of Temporal's 2 MiB limit, with
# room for the codec's encryption.
MAX_SUPPRESSIONS = 2_000
LIST_FULL = "SuppressionListFull"
RPC_TIMEOUT = timedelta(seconds=5)
# The check's local activity: quick, retried briefly (the list's workflow is on this worker).
CHECK_TIMEOUT = timedelta(seconds=10)
CHECK_RETRY = RetryPolicy(maximum_attempts=5, initial_interval=timedelta(milliseconds=200))


class SuppressionOrigin(StrEnum):
    """Why an address is on the list (Resend's `origin`)."""

    BOUNCE = "bounce"
    COMPLAINT = "complaint"
    MANUAL = "manual"


@dataclass
class Suppression:
    id: str
    email: str
    origin: SuppressionOrigin
    created_at: str
    # The email that bounced or complained (None for a manual add).
    source_id: str | None = None


@dataclass
class SuppressionsInput:
    """The list's workflow input; `entries` carried across a continue-as-new."""

    WORKFLOW: ClassVar[str] = "Suppressions"

    tenant_id: str | None
    entries: list[Suppression] = field(default_factory=list)


@dataclass
class AddSuppressionInput:
    email: str
    origin: SuppressionOrigin = SuppressionOrigin.MANUAL
    source_id: str | None = None


@dataclass
class AddSuppressionsInput:
    """Several addresses in one update (Resend's batch add)."""

    entries: list[AddSuppressionInput]


@dataclass
class RemoveSuppressionsInput:
    """Several ids or addresses in one update (Resend's batch remove)."""

    ids_or_emails: list[str]


@dataclass
class RemoveSuppressionInput:
    """An entry's id (`sup_…`) or its address."""

    id_or_email: str


@dataclass
class CheckSuppressedInput:
    tenant_id: str | None
    emails: list[str]


@dataclass
class CheckSuppressedResult:
    """The addresses of the check that are suppressed (canonical form)."""

    suppressed: list[str]


@dataclass
class SuppressAddressesInput:
    """Automatic adds (a permanent bounce, a complaint) from a delivery workflow."""

    tenant_id: str | None
    emails: list[str]
    origin: SuppressionOrigin
    source_id: str | None = None


ADD_UPDATE = "add"
REMOVE_UPDATE = "remove"
ADD_MANY_UPDATE = "add_many"
REMOVE_MANY_UPDATE = "remove_many"
LIST_QUERY = "entries"
CHECK_QUERY = "suppressed"


def canonical_address(address: str) -> str:
    """`Ann <Ann@Example.COM>` -> `ann@example.com` (the domain as IDNA ASCII)."""
    _, addr = parseaddr(address.strip())
    local, _, domain = (addr or address.strip()).rpartition("@")
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        pass
    return f"{local}@{domain}".lower()


def list_workflow_id(tenant_id: str | None) -> str:
    """The list's workflow id: a business key, never an address."""
    return f"suppressions-{tenant_id}" if tenant_id is not None else "suppressions"


class SuppressionListFull(Exception):
    """The list holds `MAX_SUPPRESSIONS` addresses already."""


class SuppressionStore:
    """The calls that read and change a tenant's list (its workflow starts on first add)."""

    def __init__(self, client: Client, task_queue: str) -> None:
        self.client = client
        self.task_queue = task_queue

    async def add(
        self,
        tenant_id: str | None,
        email: str,
        origin: SuppressionOrigin,
        source_id: str | None = None,
    ) -> Suppression:
        entry = AddSuppressionInput(canonical_address(email), origin, source_id)
        added: Suppression = await self._change(tenant_id, ADD_UPDATE, entry, Suppression)
        return added

    async def add_many(self, tenant_id: str | None, emails: list[str]) -> list[Suppression]:
        """Several addresses added by hand, in one update of the list."""
        entries = [AddSuppressionInput(canonical_address(email)) for email in emails]
        added: list[Suppression] = await self._change(
            tenant_id, ADD_MANY_UPDATE, AddSuppressionsInput(entries), list[Suppression]
        )
        return added

    async def _change(self, tenant_id: str | None, update: str, arg: Any, result: Any) -> Any:
        # Start (or find) the list, then update it: two calls, each answered or failed on
        # its own (no update is left waiting on a start when no worker answers).
        handle = await self.client.start_workflow(
            SuppressionsInput.WORKFLOW,
            SuppressionsInput(tenant_id),
            id=list_workflow_id(tenant_id),
            task_queue=self.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            rpc_timeout=RPC_TIMEOUT,
        )
        try:
            return await handle.execute_update(
                update, arg, result_type=result, rpc_timeout=RPC_TIMEOUT
            )
        except WorkflowUpdateFailedError as err:
            cause = err.cause
            if isinstance(cause, ApplicationError) and cause.type == LIST_FULL:
                raise SuppressionListFull(cause.message) from None
            raise

    async def remove_many(self, tenant_id: str | None, keys: list[str]) -> list[Suppression]:
        """Several entries removed (by id or address) in one update; those found."""
        handle = self.client.get_workflow_handle(list_workflow_id(tenant_id))
        canonical = [k if k.startswith("sup_") else canonical_address(k) for k in keys]
        try:
            removed: list[Suppression] = await handle.execute_update(
                REMOVE_MANY_UPDATE,
                RemoveSuppressionsInput(canonical),
                result_type=list[Suppression],
                rpc_timeout=RPC_TIMEOUT,
            )
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                return []
            raise
        return removed

    async def remove(self, tenant_id: str | None, id_or_email: str) -> Suppression | None:
        removed = await self.remove_many(tenant_id, [id_or_email])
        return removed[0] if removed else None

    async def entries(self, tenant_id: str | None) -> list[Suppression]:
        """The whole list, newest first ([] before the first add)."""
        handle = self.client.get_workflow_handle(list_workflow_id(tenant_id))
        try:
            found: list[Suppression] = await handle.query(
                LIST_QUERY, result_type=list[Suppression], rpc_timeout=RPC_TIMEOUT
            )
        except (RPCError, WorkflowQueryFailedError) as err:
            if isinstance(err, RPCError) and err.status == RPCStatusCode.NOT_FOUND:
                return []
            raise
        return found

    async def suppressed(self, tenant_id: str | None, emails: list[str]) -> list[str]:
        """Which of `emails` are on the list (canonical form)."""
        handle = self.client.get_workflow_handle(list_workflow_id(tenant_id))
        try:
            found: list[str] = await handle.query(
                CHECK_QUERY,
                [canonical_address(e) for e in emails],
                result_type=list[str],
                rpc_timeout=RPC_TIMEOUT,
            )
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                return []
            raise
        return found


class SuppressionActivities:
    """The delivery workflows' side: check before the provider call, add on a hard bounce."""

    def __init__(self, store: SuppressionStore) -> None:
        self.store = store

    @activity.defn(name="check_suppressed")
    async def check_suppressed(self, data: CheckSuppressedInput) -> CheckSuppressedResult:
        return CheckSuppressedResult(await self.store.suppressed(data.tenant_id, data.emails))

    @activity.defn(name="suppress_addresses")
    async def suppress_addresses(self, data: SuppressAddressesInput) -> None:
        for email in data.emails:
            try:
                await self.store.add(data.tenant_id, email, data.origin, data.source_id)
            except SuppressionListFull:
                activity.logger.warning("suppression list of a tenant is full; not added")
