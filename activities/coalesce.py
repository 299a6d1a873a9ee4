"""The coalescing activities: hand a due email to its coalescer (local activity), and one
attempt of a composed call (claim each email from its workflow, then one batch call).

The call's composition comes in the attempt's input (recorded before the call); each email's
message comes from its own workflow's claim answer and is checked against the digest its
ref carries, so every attempt of one call sends the same bytes under the same key: a claim
is final (an email claimed by a call stays claimed by it; a cancelled one stays cancelled).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict
from datetime import timedelta

from temporalio import activity
from temporalio.client import (
    Client,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from activities import errors
from activities.coalesce_types import (
    CLAIM_UPDATE,
    CLAIMED,
    COALESCER_WORKFLOW,
    ENQUEUE_SIGNAL,
    WITHDRAWN,
    ClaimInput,
    ClaimResult,
    CoalescedAttemptInput,
    CoalescedAttemptResult,
    CoalescedItem,
    CoalesceRef,
    EnqueueInput,
    EnqueueResult,
    coalescer_id,
)
from activities.delivery_contract import message_sha256
from activities.send import PinnedMessages, SendActivities, _check_window, _Clock, _refuse
from activities.transports.base import EmailTransport
from activities.transports.failover import cannot_take_now
from activities.types import EmailMessage

# Claims go out together (one update per email of the call).
CLAIM_CONCURRENCY = 100
# A call attempt's heartbeat timeout, when its transport deduplicates a retry by key: a
# worker killed mid-call is noticed this fast, and the retry goes under the same key. A
# transport that cannot deduplicate gets none: its attempt's only heartbeat says the message
# may have left (`AttemptProgress`), and periodic beats would delay that one (the SDK
# throttles them) past a crash.
CALL_HEARTBEAT_SECONDS = 10.0
# A coalescer's workflow task timeout (Temporal's default is 10 s): a busy worker can take
# longer over a task carrying hundreds of refs, and a task that times out is retried with
# even more of them. A worker lost mid-task delays the shard this long, once.
COALESCER_TASK_TIMEOUT = timedelta(seconds=30)


@asynccontextmanager
async def heartbeating(*, enabled: bool) -> AsyncIterator[None]:
    """Heartbeat (no details) four times per heartbeat timeout while the block runs, when
    `enabled` (this worker's transport deduplicates by key) and the activity has one."""
    timeout = activity.info().heartbeat_timeout
    if not enabled or not timeout:
        yield
        return

    async def beat() -> None:
        while True:
            activity.heartbeat()
            await asyncio.sleep(timeout.total_seconds() / 4)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()


def payload_size(message: EmailMessage) -> int:
    """The message's size as a request body, about (JSON of its fields)."""
    return len(json.dumps(asdict(message), ensure_ascii=False).encode())


def shard_of(email_id: str, shards: int) -> int:
    """By a hash of the email id: every shard sees every tenant, no shard is one tenant's."""
    return int(hashlib.sha256(email_id.encode()).hexdigest()[:8], 16) % max(1, shards)


class CoalesceActivities(SendActivities):
    """Provider-facing coalescing activities; the client claims emails and starts coalescers."""

    def __init__(
        self, transport: EmailTransport, client: Client, messages: PinnedMessages | None = None
    ) -> None:
        super().__init__(transport, messages)
        self._client = client

    def coalescible(self, message: EmailMessage, size: int) -> bool:
        """Whether this transport's batch call can carry the message (asked, never named)."""
        caps = self._transport.capabilities
        if caps.max_batch < 2 or size > caps.max_request_bytes:
            return False
        return caps.batch_attachments or not message.attachments

    @activity.defn(name="coalesce_enqueue")
    async def enqueue(self, data: EnqueueInput) -> EnqueueResult:
        """Signal-with-start the email's shard's coalescer with its ref (a repeat is ignored
        there, by email id); not enqueued when the batch call cannot carry it."""
        size = payload_size(data.message)
        if not self.coalescible(data.message, size):
            return EnqueueResult(enqueued=False)
        ref = CoalesceRef(
            email_id=data.email_id,
            workflow_id=data.workflow_id,
            digest=message_sha256(data.message),
            size=size,
            not_after=data.not_after,
            priority_key=data.priority_key,
            fairness_key=data.fairness_key,
        )
        target = coalescer_id(data.send_task_queue, shard_of(data.email_id, data.shards))
        caps = self._transport.capabilities
        start = {
            **data.start,
            "shard_id": target,
            "max_batch": caps.max_batch,
            "max_bytes": caps.max_request_bytes,
            "heartbeat_seconds": CALL_HEARTBEAT_SECONDS if caps.deduplicates_by_key else 0,
        }
        await self._client.start_workflow(
            COALESCER_WORKFLOW,
            start,
            id=target,
            # Coalescers run in the send worker (worker.py), not among the emails' workflows
            # (a coalescer started earlier on `task_queue` stays there: that worker runs it).
            task_queue=data.send_task_queue,
            task_timeout=COALESCER_TASK_TIMEOUT,
            start_signal=ENQUEUE_SIGNAL,
            start_signal_args=[ref],
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )
        return EnqueueResult(enqueued=True, coalescer_id=target)

    @activity.defn(name="deliver_coalesced_call")
    async def send_coalesced(self, data: CoalescedAttemptInput) -> CoalescedAttemptResult:
        """One attempt of a composed call: claim every email, send the claimed ones in one
        batch call under the call's key (no call at all if none could be claimed)."""
        async with heartbeating(enabled=self._transport.capabilities.deduplicates_by_key):
            return await self._attempt(data)

    async def _attempt(self, data: CoalescedAttemptInput) -> CoalescedAttemptResult:
        clock = _Clock()
        _check_window(data.not_after, data.attempt, clock.started_at)
        limit = asyncio.Semaphore(CLAIM_CONCURRENCY)

        async def claim(ref: CoalesceRef) -> ClaimResult:
            async with limit:
                return await self._claim(ref, data.call_id, clock.started_at)

        claims = await asyncio.gather(*(claim(ref) for ref in data.refs))
        items = [
            CoalescedItem(ref.email_id, c.outcome, c.held_by, never=c.never)
            for ref, c in zip(data.refs, claims, strict=True)
        ]
        messages = [c.message for c in claims if c.outcome == CLAIMED and c.message is not None]
        if not messages:
            return CoalescedAttemptResult(items)
        call = self._transport.send_batch(messages, data.idempotency_key)
        try:
            sent = await self._call(call, data, clock)
        except ApplicationError as err:
            raise self._alone_if_failing_over(err, data) from None
        outcomes = iter(sent.items)
        for item in items:
            if item.claim == CLAIMED:
                item.outcome = next(outcomes)
        activity.logger.info(
            "coalesced call %s attempt %d: %d of %d claimed, sent by %s in %.0f ms",
            data.call_id,
            data.attempt,
            len(messages),
            len(items),
            self._transport.name,
            clock.duration_ms,
        )
        return CoalescedAttemptResult(items, self._batch_result(sent, clock))

    def _alone_if_failing_over(
        self, err: ApplicationError, data: CoalescedAttemptInput
    ) -> ApplicationError:
        """A batch call never fails over: when the provider provably did not take it and
        cannot take mail now, behind a transport that fails over, and no earlier attempt may
        have reached a provider, the call ends and its emails go alone (each may move)."""
        if (
            not self._transport.capabilities.fails_over
            or data.may_have_been_taken_by
            or not cannot_take_now(err.type)
        ):
            return err
        return ApplicationError(
            f"{err.message}; the call ends, its emails go alone to fail over",
            *err.details,
            type=errors.SEND_ALONE,
            non_retryable=True,
        )

    async def _claim(self, ref: CoalesceRef, call_id: str, started_at: str) -> ClaimResult:
        """Claim one email for this call; its message must be the one its ref names."""
        handle = self._client.get_workflow_handle(ref.workflow_id)
        try:
            result: ClaimResult = await handle.execute_update(
                CLAIM_UPDATE, ClaimInput(call_id, ref.digest), result_type=ClaimResult
            )
        except WorkflowUpdateFailedError:
            return ClaimResult(WITHDRAWN)
        except (RPCError, WorkflowUpdateRPCTimeoutOrCancelledError) as err:
            # A claim that timed out (a busy worker) fails the attempt before any provider
            # call, as a refused one does: provably not sent, retried under the same key.
            if isinstance(err, RPCError) and err.status == RPCStatusCode.NOT_FOUND:
                return ClaimResult(WITHDRAWN)  # its workflow ended: nothing to send
            _refuse(
                errors.MESSAGE_UNAVAILABLE,
                f"not sent: could not claim an email of the call ({type(err).__name__}); "
                "the provider was not called",
                started_at,
                permanent=False,
            )
        if result.outcome == CLAIMED and (
            result.message is None or message_sha256(result.message) != ref.digest
        ):
            return ClaimResult(WITHDRAWN)  # its message changed: never sent as this ref
        return result
