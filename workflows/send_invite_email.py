"""`SendInviteEmail`: render an invitation once, then deliver it exactly once."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.templates import render_invite
    from activities.types import RenderInviteInput
    from workflows.delivery import Delivery, DeliveryWorkflow
    from workflows.ids import KIND_INVITE
    from workflows.types import EmailStatusResult, SendInviteEmailInput

RENDER_RETRY = RetryPolicy(maximum_attempts=3, initial_interval=timedelta(milliseconds=200))


@workflow.defn(name="SendInviteEmail")
class SendInviteEmail(DeliveryWorkflow):
    """Render the invitation (a local activity whose recorded result pins the exact bytes),
    then send it through the shared delivery loop."""

    @workflow.init
    def __init__(self, data: SendInviteEmailInput) -> None:
        self._delivery = Delivery(
            data.invite_id, KIND_INVITE, data.policy, tenant_id=data.tenant_id, send_at=data.send_at
        )

    @workflow.run
    async def run(self, data: SendInviteEmailInput) -> EmailStatusResult:
        self._delivery.begin()
        if not await self._delivery.wait_until_due():
            return self._delivery.state
        rendered = await workflow.execute_local_activity(
            render_invite,
            RenderInviteInput(
                invite_id=data.invite_id,
                to=data.to,
                sender=data.sender,
                tenant_name=data.tenant_name,
                inviter_name=data.inviter_name,
                accept_url=data.accept_url,
                role=data.role,
            ),
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=RENDER_RETRY,
        )
        # Stable across retries, resets and continue-as-new, unlike the run id.
        key = f"{workflow.info().workflow_id}/send"
        return await self._delivery.send_and_track(rendered.message, key)
