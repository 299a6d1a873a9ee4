"""The invite service: what the API asks of an invite's workflow (`SendInviteEmail`, class
`Invite`), in domain words.

Build an invite's link (the app's, checked against the hosts its tenant allows, or ours
with a token we issue), start it once, read it, accept it, revoke it. Temporal's errors and
the workflow's refusals become the domain errors of `api.errors`; nothing here knows HTTP.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from temporalio.client import (
    Client,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowQueryFailedError,
    WorkflowQueryRejectedError,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from activities.delivery_contract import SendKind
from activities.invite_tokens import PLACEHOLDER, derive_token, token_digest
from activities.types import InviteToken
from api.errors import (
    Conflict,
    Gone,
    InvalidField,
    NotConfigured,
    NotConfirmed,
    NotFound,
    SendError,
    TooManyAttempts,
    Unavailable,
)
from api.idempotency import owned_batch_item, owned_workflow_id
from api.recorded import recorded_input
from api.temporal_errors import QUERY_TIMEOUT, RPC_TIMEOUT, temporal_errors
from api.tenants import Caller, app_base_url
from config import Settings
from workflows.invite_batch_types import INVITE_ITEM_QUERY, InviteBatchInput, InviteBatchResult
from workflows.search_attributes import TENANT_ID
from workflows.status import InviteStatus
from workflows.types import (
    ACCEPT_UPDATE,
    INVITE_ALREADY_ACCEPTED,
    INVITE_EXPIRED,
    INVITE_LOCKED,
    INVITE_NOT_FOUND,
    INVITE_QUERY,
    INVITE_REVOKED,
    INVITE_TOKEN_NOT_EXPECTED,
    INVITE_TOKEN_REQUIRED,
    REVOKE_UPDATE,
    AcceptInput,
    AcceptResult,
    InviteInput,
    InviteState,
    RevokeInput,
    RevokeResult,
)

log = logging.getLogger(__name__)

# An invite's life: 1.0 names it `SendInviteEmail`; 0.1.0 named it `Invite` (its executions
# still drain on the 0.1.0 worker, docs/upgrading.md, and read here like any other).
INVITE_WORKFLOWS = frozenset({InviteInput.WORKFLOW, "Invite"})
# Batch invites live in their batch's workflow since 1.3 (before, a `SendBatch` held only
# their emails: such an item is no invite here, 404 as before).
INVITE_BATCH_WORKFLOWS = frozenset({InviteBatchInput.WORKFLOW})
ACCEPT_PATH = "/invites/accept"
NO_SUCH_INVITE = "no invite with this id"
WRONG_TOKEN = "no invite with this id and token"
NOT_CONFIRMED = (
    "no worker answered in time: the {change} is neither confirmed nor refused, and may "
    "still be applied when a worker runs. Read the invite (GET) before retrying; a retry "
    "after it was applied is answered as such."
)


def managed_link(settings: Settings, tenant_id: str | None, invite_id: str) -> str:
    """Our accept link (on the tenant's app page), holding the placeholder the send
    replaces with the token."""
    query = urlencode({"invite": invite_id})
    base = app_base_url(settings, tenant_id).rstrip("/")
    return f"{base}{ACCEPT_PATH}?{query}&token={PLACEHOLDER}"


def _secret(settings: Settings) -> str:
    secret = settings.invite_token_secret
    if secret is None:
        raise NotConfigured(
            "invites with our token need INVITE_TOKEN_SECRET; set it, or pass accept_url"
        )
    return secret.get_secret_value()


def issue_token(settings: Settings, invite_id: str) -> tuple[InviteToken, str]:
    """A new token's reference (what the send derives it from) and its keyed digest.

    The token itself is derived here only to be hashed, and is dropped.
    """
    secret = _secret(settings)
    ref = InviteToken(invite_id=invite_id, nonce=secrets.token_urlsafe(16))
    return ref, token_digest(secret, derive_token(secret, ref))


def presented_digest(settings: Settings, token: str | None) -> str | None:
    """The digest an accept sends the workflow (the same HMAC work for any token)."""
    return token_digest(_secret(settings), token) if token is not None else None


def _scope(caller: Caller) -> str | None:
    """The tenant the workflow must hold the invite for (None: an operator, any)."""
    if caller.operator:
        return None
    if caller.tenant_id is None:
        raise NotFound(NO_SUCH_INVITE)
    return caller.tenant_id


@dataclass(frozen=True)
class Target:
    """Where an invite lives: its own workflow (`item` None) or its batch's, at `item`."""

    workflow_id: str
    item: int | None = None

    @property
    def types(self) -> frozenset[str]:
        """The workflow types that hold such an invite."""
        return INVITE_WORKFLOWS if self.item is None else INVITE_BATCH_WORKFLOWS


def _target(invite_id: str, caller: Caller) -> Target:
    """The invite's workflow (and item), if its id is the caller's (the tag check is the
    tenant filter: another tenant's id is the same 404 as one that does not exist)."""
    if (item := owned_batch_item(invite_id, caller)) is not None:
        batch_id, kind, index = item
        if kind != SendKind.INVITE:
            raise NotFound(NO_SUCH_INVITE)
        return Target(batch_id, index)
    workflow_id = owned_workflow_id(invite_id, caller)
    if workflow_id is None or not invite_id.startswith("inv_"):
        raise NotFound(NO_SUCH_INVITE)
    return Target(workflow_id)


@dataclass
class InviteRecord:
    """An invite as read; `live` False: no worker answered in time, so this is what the
    server knows (the invite's input and times), without its emails' progress."""

    state: InviteState
    live: bool = True


async def read_invite(client: Client, invite_id: str, caller: Caller) -> InviteState:
    """`read_invite_record`'s state."""
    return (await read_invite_record(client, invite_id, caller)).state


async def read_invite_record(client: Client, invite_id: str, caller: Caller) -> InviteRecord:
    """The invite: from its `invite` query while it lives (from its input if no worker
    answers within `QUERY_TIMEOUT`), from its result once ended.

    Another tenant's invite is `NotFound`, as one that does not exist.
    """
    target = _target(invite_id, caller)
    handle = client.get_workflow_handle(target.workflow_id)
    try:
        with temporal_errors():
            description = await handle.describe(rpc_timeout=RPC_TIMEOUT)
            tenant_id = description.typed_search_attributes.get(TENANT_ID)
            if description.workflow_type not in target.types or not caller.sees(tenant_id):
                # Not an invite's life (an email's workflow): read at /v1/emails.
                raise NotFound(NO_SUCH_INVITE)
            state: InviteState
            if description.status == WorkflowExecutionStatus.RUNNING:
                try:
                    state = await _query(client, target)
                except (RPCError, WorkflowQueryFailedError, WorkflowQueryRejectedError) as err:
                    log.info("invite %s not live: %s", invite_id, type(err).__name__)
                    known = await _known_invite(client, description, target)
                    return InviteRecord(known, live=False)
            elif description.status == WorkflowExecutionStatus.COMPLETED:
                state = await _ended(client, target)
            else:
                ended = description.status.name if description.status else "unknown"
                raise Gone(f"the invite's workflow ended abnormally ({ended})")
    except NotFound:
        raise NotFound(NO_SUCH_INVITE) from None
    return InviteRecord(state)


async def _query(client: Client, target: Target) -> InviteState:
    """A running invite, as its workflow answers."""
    handle = client.get_workflow_handle(target.workflow_id)
    state: InviteState
    if target.item is None:
        state = await handle.query(INVITE_QUERY, result_type=InviteState, rpc_timeout=QUERY_TIMEOUT)
    else:
        state = await handle.query(
            INVITE_ITEM_QUERY, target.item, result_type=InviteState, rpc_timeout=QUERY_TIMEOUT
        )
    return state


async def _ended(client: Client, target: Target) -> InviteState:
    """An ended invite: its workflow's result, or its item of its batch's."""
    if target.item is None:
        single = client.get_workflow_handle(target.workflow_id, result_type=InviteState)
        state: InviteState = await single.result(rpc_timeout=RPC_TIMEOUT)
        return state
    batch = client.get_workflow_handle(target.workflow_id, result_type=InviteBatchResult)
    result: InviteBatchResult = await batch.result(rpc_timeout=RPC_TIMEOUT)
    if target.item >= len(result.invites):
        raise NotFound(NO_SUCH_INVITE)
    return result.invites[target.item]


async def _known_invite(
    client: Client, description: WorkflowExecutionDescription, target: Target
) -> InviteState:
    """A running invite as the server knows it: the state its latest run started from
    (carried by a continue-as-new), or the one its input makes (times from its start).
    Running means not accepted nor revoked; past `expires_at` it is expired (the workflow
    would say so too, whatever its timer)."""
    recorded = await recorded_input(client, description.id, description.run_id)
    if target.item is not None:
        state = _known_item(recorded, description, target.item)
    else:
        state = _known_single(recorded, description)
    if state.status == InviteStatus.PENDING and datetime.now(UTC) >= datetime.fromisoformat(
        state.expires_at
    ):
        state = replace(state, status=InviteStatus.EXPIRED, expired_at=state.expires_at)
    return state


def _known_single(recorded: object, description: WorkflowExecutionDescription) -> InviteState:
    data = recorded if isinstance(recorded, InviteInput) else None
    if data is None:
        raise Unavailable("the invite's start event holds no invite")
    if data.continued is not None:
        return data.continued.state
    # As the workflow counts (`Invite`, since `invite-times-from-start-v1`): from its
    # start on the server's clock, which a reset keeps.
    link = "managed" if data.token_digest is not None else "app"
    started = _Started(description, data.expires_in_seconds, data.remind_after_seconds)
    return started.invite(data.invite_id, data.to, data.role, link, data.locale, data.tenant_id)


@dataclass(frozen=True)
class _Started:
    """A pending invite's times, from its workflow's start (as the workflows count)."""

    description: WorkflowExecutionDescription
    expires_in_seconds: float
    remind_after_seconds: float | None

    def invite(
        self, invite_id: str, to: str, role: str | None, link: str, locale: str, tenant: str | None
    ) -> InviteState:
        created = self.description.start_time
        remind = self.remind_after_seconds
        return InviteState(
            invite_id=invite_id,
            status=InviteStatus.PENDING,
            to=to,
            link=link,
            locale=locale,
            created_at=created.isoformat(),
            expires_at=(created + timedelta(seconds=self.expires_in_seconds)).isoformat(),
            tenant_id=tenant,
            role=role,
            remind_at=(created + timedelta(seconds=remind)).isoformat() if remind else None,
        )


def _known_item(
    recorded: object, description: WorkflowExecutionDescription, item: int
) -> InviteState:
    """A batch's invite as its latest run started it (as `InviteBatch` makes it)."""
    data = recorded if isinstance(recorded, InviteBatchInput) else None
    if data is None:
        raise Unavailable("the batch's start event holds no invites")
    if item >= len(data.items):
        raise NotFound(NO_SUCH_INVITE)
    if data.life is not None:
        return data.life.invites[item]
    started = _Started(description, data.expires_in_seconds, data.remind_after_seconds)
    item_input = data.items[item]
    invite = item_input.invite
    to, role = (invite.to, invite.role) if invite else ("", None)
    return started.invite(item_input.email_id, to, role, "managed", data.locale, data.tenant_id)


async def accept_invite(
    client: Client, invite_id: str, digest: str | None, caller: Caller
) -> InviteState:
    """Accept once: the accepted invite; `Conflict` once accepted, `Gone` once expired or
    revoked, `NotFound` for a wrong token (counted), `TooManyAttempts` once locked."""
    target = _target(invite_id, caller)
    handle = client.get_workflow_handle(target.workflow_id)
    with temporal_errors():
        try:
            result: AcceptResult = await handle.execute_update(
                ACCEPT_UPDATE,
                AcceptInput(token_digest=digest, tenant_id=_scope(caller), item=target.item),
                result_type=AcceptResult,
                rpc_timeout=RPC_TIMEOUT,
            )
        except (WorkflowUpdateFailedError, RPCError) as err:
            raise _as_error(await _why_refused(client, invite_id, caller, err)) from None
        except WorkflowUpdateRPCTimeoutOrCancelledError:
            raise NotConfirmed(NOT_CONFIRMED.format(change="accept")) from None
    if not result.accepted:
        raise NotFound(WRONG_TOKEN)
    return result.invite


async def revoke_invite(client: Client, invite_id: str, caller: Caller) -> tuple[InviteState, bool]:
    """Revoke (again: the same answer); the invite and whether an email was cancelled.
    `Conflict` once accepted, `Gone` once expired."""
    target = _target(invite_id, caller)
    handle = client.get_workflow_handle(target.workflow_id)
    with temporal_errors():
        try:
            result: RevokeResult = await handle.execute_update(
                REVOKE_UPDATE,
                RevokeInput(tenant_id=_scope(caller), item=target.item),
                result_type=RevokeResult,
                rpc_timeout=RPC_TIMEOUT,
            )
            return result.invite, result.email_cancelled
        except (WorkflowUpdateFailedError, RPCError) as err:
            why = await _why_refused(client, invite_id, caller, err)
        except WorkflowUpdateRPCTimeoutOrCancelledError:
            raise NotConfirmed(NOT_CONFIRMED.format(change="revoke")) from None
    if why == InviteStatus.REVOKED:
        return await read_invite(client, invite_id, caller), False
    raise _as_error(why)


async def _why_refused(
    client: Client, invite_id: str, caller: Caller, err: Exception
) -> InviteStatus | SendError:
    """Why the workflow did not take an update: the status that ended the invite (from its
    validator's failure type, or its final state once closed), or a refusal of its own."""
    if isinstance(err, RPCError) and err.status != RPCStatusCode.NOT_FOUND:
        raise err
    cause = err.cause if isinstance(err, WorkflowUpdateFailedError) else None
    kind = cause.type if isinstance(cause, ApplicationError) else None
    message = cause.message if isinstance(cause, ApplicationError) else ""
    refused: dict[str | None, InviteStatus | SendError] = {
        INVITE_NOT_FOUND: NotFound(NO_SUCH_INVITE),
        INVITE_ALREADY_ACCEPTED: InviteStatus.ACCEPTED,
        INVITE_EXPIRED: InviteStatus.EXPIRED,
        INVITE_REVOKED: InviteStatus.REVOKED,
        INVITE_LOCKED: TooManyAttempts(message),
        INVITE_TOKEN_REQUIRED: InvalidField("token", message),
        INVITE_TOKEN_NOT_EXPECTED: InvalidField("token", message),
    }
    if kind in refused:
        return refused[kind]
    # Closed (NOT_FOUND), an older invite type without this update, or it ended meanwhile.
    return (await read_invite(client, invite_id, caller)).status


def _as_error(why: InviteStatus | SendError) -> SendError:
    if isinstance(why, SendError):
        return why
    if why == InviteStatus.ACCEPTED:
        return Conflict("the invite was already accepted")
    if why == InviteStatus.EXPIRED:
        return Gone("the invite has expired")
    if why == InviteStatus.REVOKED:
        return Gone("the invite was revoked")
    return Unavailable("the invite did not take the request; retry")
