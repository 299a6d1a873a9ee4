"""The one acceptance path: every accepting handler of both surfaces (`/v1` and Resend's)
goes caller -> tenant -> sender check -> idempotency key -> ids -> input -> fingerprint ->
start -> replay header here, and keeps only its request and response shapes.

A handler describes its request (`Ask`), builds the workflow input from what the path has
settled (`Ticket`) and maps the `Accepted` answer. The send is started once: a repeat of
the same request (same key, same body) is answered again, another body under the same key
is `IdempotencyKeyReused`. Nothing here knows HTTP but the replay header.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Response
from temporalio.client import Client
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError

from activities.delivery_contract import SendKind
from api.deps import (
    CallerDep,
    FingerprintKeysDep,
    IdempotencyKey,
    SettingsDep,
    TemporalClientDep,
)
from api.errors import IdempotencyKeyReused, InvalidField, NotFound
from api.idempotency import Fingerprint, FingerprintKeys, batch_kind, send_key
from api.policy import bulk, delivery_policy, fairness_key, start_priority, transactional
from api.temporal_errors import NO_SUCH_EMAIL, RPC_TIMEOUT, temporal_errors, unless_not_found
from api.tenants import Caller, allowed_sender_domains, check_sender, default_sender
from config import Settings
from workflows.batch_types import BatchItemInput, SendBatchInput
from workflows.ids import batch_ids, batch_item_id, send_ids
from workflows.search_attributes import EMAIL_KIND, EMAIL_STATUS, TENANT_ID
from workflows.status import SendStatus
from workflows.types import DeliveryPolicy, InviteInput, SendEmailInput

REQUEST_HASH_MEMO = "request_sha256"
ACCEPTED_AT_MEMO = "accepted_at"
REPLAYED_HEADER = "Idempotent-Replayed"

SendInput = SendEmailInput | InviteInput | SendBatchInput
InputT = TypeVar("InputT", SendEmailInput, InviteInput, SendBatchInput)


@dataclass(frozen=True)
class Intake:
    """What every accepting handler is given: the caller, its key and where to record."""

    client: Client
    settings: Settings
    caller: Caller
    fingerprints: FingerprintKeys
    idempotency_key: str | None
    response: Response


async def get_intake(
    client: TemporalClientDep,
    settings: SettingsDep,
    caller: CallerDep,
    fingerprints: FingerprintKeysDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> Intake:
    """The intake of an accepting request."""
    return Intake(client, settings, caller, fingerprints, idempotency_key, response)


IntakeDep = Annotated[Intake, Depends(get_intake)]


def in_the_future(send_at: datetime) -> str | None:
    """`/v1`'s rule for a `send_at`: a moment still to come."""
    return "must be in the future" if send_at <= datetime.now(UTC) else None


@dataclass(frozen=True)
class Ask:
    """One accepting request, as its handler describes it."""

    kind: SendKind
    # The request as validated: fingerprinted with the tenant it resolves to.
    body: Mapping[str, Any]
    # The tenant the body names (None: the caller's own, or none for an operator).
    tenant: str | None = None
    # Senders the body names, with the field each came from; and whether a default is used.
    senders: Sequence[tuple[str, str]] = ()
    default_sender: bool = False
    batch: bool = False
    send_at: datetime | None = None
    # Why `send_at` cannot be honoured now (None: it can), and the field it came from.
    schedule_rule: Callable[[datetime], str | None] = in_the_future
    schedule_field: str = "send_at"
    # Idempotency keys of another surface are apart from /v1's (see `send_key`).
    surface: str = ""


@dataclass(frozen=True)
class Ticket:
    """What the path has settled before the handler builds the workflow input."""

    kind: SendKind
    tenant_id: str | None
    key: str
    # The send's (or batch's) public id and its workflow's id.
    id: str
    workflow_id: str
    # The sender of a send that names none (checked if `Ask.default_sender`).
    sender: str
    policy: DeliveryPolicy
    accepted_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())

    def item_id(self, index: int) -> str:
        """The public id of a batch's item at `index`."""
        return batch_item_id(self.kind, self.key, index)

    def batch(self, items: list[BatchItemInput]) -> SendBatchInput:
        """The batch workflow's input holding `items`."""
        return SendBatchInput(
            batch_id=self.id,
            kind=self.kind,
            items=items,
            tenant_id=self.tenant_id,
            policy=self.policy,
            accepted_at=self.accepted_at,
        )


@dataclass(frozen=True)
class Accepted(Generic[InputT]):
    ticket: Ticket
    data: InputT
    # True when this request repeats one already accepted (same key, same body).
    replayed: bool

    @property
    def id(self) -> str:
        return self.ticket.id

    @property
    def workflow_id(self) -> str:
        return self.ticket.workflow_id


def settle(intake: Intake, ask: Ask) -> Ticket:
    """Caller -> tenant -> sender check -> idempotency key -> ids (no call to Temporal)."""
    settings, caller = intake.settings, intake.caller
    tenant_id = caller.tenant_for(ask.tenant)
    allowed = allowed_sender_domains(settings, caller)
    for sender, named_in in ask.senders:
        check_sender(sender, allowed, field=named_in)
    fallback = default_sender(settings, caller)
    if ask.default_sender:
        check_sender(fallback, allowed, field=None)
    scope = batch_kind(ask.kind) if ask.batch else ask.kind
    key = send_key(scope, intake.idempotency_key, tenant_id=tenant_id, surface=ask.surface)
    public_id, workflow_id = batch_ids(key) if ask.batch else send_ids(ask.kind, key)
    place = bulk if ask.batch else transactional
    return Ticket(
        kind=ask.kind,
        tenant_id=tenant_id,
        key=key,
        id=public_id,
        workflow_id=workflow_id,
        sender=fallback,
        policy=delivery_policy(settings, place(fairness_key(caller.key_id, tenant_id))),
    )


async def accept(
    intake: Intake, ask: Ask, build: Callable[[Ticket], Awaitable[InputT]]
) -> Accepted[InputT]:
    """Accept `ask` once: its workflow started with the input `build` makes, or (a repeat)
    the first answer again, marked with the replay header."""
    ticket = settle(intake, ask)
    # The tenant as resolved: the same request under a tenant's key and under an
    # operator's naming that tenant is the same request.
    fingerprint = intake.fingerprints.fingerprint(
        {**ask.body, "tenant_id": ticket.tenant_id}, intake.idempotency_key
    )
    replayed = False
    if ask.send_at is not None and (problem := ask.schedule_rule(ask.send_at)):
        # A repeat of an accepted request gets its answer again whatever the clock says
        # now: only a new request must name a moment still to come.
        if intake.idempotency_key is None or not await is_repeat(
            intake.client, ticket.workflow_id, fingerprint
        ):
            raise InvalidField(ask.schedule_field, problem)
        replayed = True
    data = await build(ticket)
    if not replayed:
        replayed = await _start(intake, ticket, data, fingerprint, scheduled=bool(ask.send_at))
    if replayed:
        intake.response.headers[REPLAYED_HEADER] = "true"
    return Accepted(ticket, data, replayed)


async def _start(
    intake: Intake, ticket: Ticket, data: SendInput, fingerprint: Fingerprint, *, scheduled: bool
) -> bool:
    """Start the send's workflow (`data.WORKFLOW`) unless this exact request already
    started it; True for such a repeat.

    REJECT_DUPLICATE keeps a finished send from being started again under the same id
    (USE_EXISTING alone would). The workflow id derives from the tenant's idempotency key,
    so a repeat is always of the same tenant. The accept time goes into the memo (and, by
    the handler, into the input of the email and batch workflows: a reset keeps it).
    """
    client = intake.client
    with temporal_errors(accepting=True):
        try:
            await client.start_workflow(
                data.WORKFLOW,
                data,
                id=ticket.workflow_id,
                task_queue=intake.settings.task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                memo={
                    REQUEST_HASH_MEMO: fingerprint.recorded,
                    ACCEPTED_AT_MEMO: ticket.accepted_at,
                },
                search_attributes=_initial_search_attributes(ticket, scheduled=scheduled),
                static_summary=start_summary(ticket.kind, ticket.tenant_id),
                priority=start_priority(data.policy),
                rpc_timeout=RPC_TIMEOUT,
            )
            return False
        except WorkflowAlreadyStartedError:
            pass
    if not await is_repeat(client, ticket.workflow_id, fingerprint):
        raise NotFound(NO_SUCH_EMAIL)  # started, then gone (retention) between two calls
    return True


async def is_repeat(client: Client, workflow_id: str, fingerprint: Fingerprint) -> bool:
    """Whether `workflow_id` holds the send this exact request started (its repeat).

    False if there is no such send; `IdempotencyKeyReused` if another body started it.
    """
    with temporal_errors(accepting=True):
        handle = client.get_workflow_handle(workflow_id)
        description = await unless_not_found(handle.describe(rpc_timeout=RPC_TIMEOUT))
        if description is None:
            return False
        previous = await description.memo_value(REQUEST_HASH_MEMO, None)
    if not fingerprint.matches(previous):
        raise IdempotencyKeyReused("Idempotency-Key was already used with a different request body")
    return True


def start_summary(kind: SendKind, tenant_id: str | None) -> str:
    """The workflow's summary in the Web UI: kind and tenant, never a recipient or subject."""
    return f"{kind} for tenant {tenant_id or '-'}"


def _initial_search_attributes(ticket: Ticket, *, scheduled: bool) -> TypedSearchAttributes:
    """Visibility fields set with the start itself: no extra upsert in the first task."""
    status = SendStatus.SCHEDULED if scheduled else SendStatus.QUEUED
    pairs: list[SearchAttributePair[Any]] = [
        SearchAttributePair(EMAIL_KIND, ticket.kind.value),
        SearchAttributePair(EMAIL_STATUS, status.value),
    ]
    if ticket.tenant_id:
        pairs.append(SearchAttributePair(TENANT_ID, ticket.tenant_id))
    return TypedSearchAttributes(pairs)
