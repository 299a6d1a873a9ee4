"""`SendBatch`: up to 100 emails (or invitations) in one provider call, each item tracked.

One start records every item once (the input); invitations are rendered once, by a local
activity whose recorded result pins the bytes. The call goes through the one delivery loop
(`workflows.delivery`): single-try attempts, the loop's backoff within the send window, one
idempotency key (`batch-…/send/0`) with the same bytes on every attempt, honest endings,
bounded history (see `workflows.delivery.batch`).
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy, VersioningBehavior
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.delivery_contract import PINNED_BATCH_QUERY, SendKind, batch_sha256
    from activities.render_batch import render_invite_batch
    from activities.types import EmailMessage, RenderInviteBatchInput
    from workflows.batch_types import BATCH_STATUS_QUERY, BatchStatusResult, SendBatchInput
    from workflows.delivery.batch import BatchCall
    from workflows.delivery.handlers import NO_PINNED_MESSAGE
    from workflows.types import DELIVERY_EVENT_SIGNAL, DeliveryEventInput

RENDER_RETRY = RetryPolicy(maximum_attempts=3, initial_interval=timedelta(milliseconds=200))
BAD_INPUT = "BatchInputInvalid"


# Pinned: a batch lives hours at most, so it finishes on the build that started it.
@workflow.defn(name=SendBatchInput.WORKFLOW, versioning_behavior=VersioningBehavior.PINNED)
class SendBatch:
    """Send a batch's items in one provider call, then track each item's delivery."""

    @workflow.init
    def __init__(self, data: SendBatchInput) -> None:
        self._call = BatchCall(data)

    @workflow.run
    async def run(self, data: SendBatchInput) -> BatchStatusResult:
        await self._call.run(await self._messages(data))
        return self._call.state

    @workflow.query(name=BATCH_STATUS_QUERY)
    def status(self) -> BatchStatusResult:
        """Where the batch's call and each of its items stand."""
        return self._call.state

    @workflow.query(name=PINNED_BATCH_QUERY)
    def pinned_batch(self, digest: str) -> list[EmailMessage]:
        """The messages this batch pinned, for the send activity (not in its input)."""
        pinned = self._call.messages
        if pinned is None or batch_sha256(pinned) != digest:
            raise ApplicationError("no such batch is pinned here", type=NO_PINNED_MESSAGE)
        return pinned

    @workflow.signal(name=DELIVERY_EVENT_SIGNAL)
    def delivery_event(self, event: DeliveryEventInput) -> None:
        """A provider webhook event for one item (by its id), counted once."""
        self._call.on_delivery_event(event)

    async def _messages(self, data: SendBatchInput) -> list[EmailMessage]:
        """The emails exactly as every attempt sends them: composed (the input), rendered
        once (a continued run has them in its carry), or none once the call is made."""
        if data.kind == SendKind.INVITE:
            if data.carry is not None:
                return data.carry.messages
            invites = [item.invite for item in data.items if item.invite is not None]
            if len(invites) != len(data.items):
                raise ApplicationError("an invite batch item has no invitation", type=BAD_INPUT)
            rendered = await workflow.execute_local_activity(
                render_invite_batch,
                RenderInviteBatchInput(invites),
                start_to_close_timeout=timedelta(seconds=10),
                retry_policy=RENDER_RETRY,
            )
            return rendered.messages
        messages = [item.message for item in data.items if item.message is not None]
        if len(messages) != len(data.items):
            raise ApplicationError("an email batch item has no message", type=BAD_INPUT)
        return messages
