"""`SendEmail`: deliver one caller-composed email exactly once."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.delivery import Delivery, DeliveryWorkflow
    from workflows.ids import KIND_EMAIL
    from workflows.types import EmailStatusResult, SendEmailInput


@workflow.defn(name="SendEmail")
class SendEmail(DeliveryWorkflow):
    """Send the message from the input (already pinned by being recorded there)."""

    @workflow.init
    def __init__(self, data: SendEmailInput) -> None:
        self._delivery = Delivery(
            data.email_id, KIND_EMAIL, data.policy, tenant_id=data.tenant_id, send_at=data.send_at
        )

    @workflow.run
    async def run(self, data: SendEmailInput) -> EmailStatusResult:
        self._delivery.begin()
        if not await self._delivery.wait_until_due():
            return self._delivery.state
        key = f"{workflow.info().workflow_id}/send"
        return await self._delivery.send_and_track(data.message, key)
