"""`SendEmail`: deliver one caller-composed email exactly once."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.delivery import Delivery
    from workflows.shared import KIND_EMAIL, EmailStatusResult, SendEmailInput


@workflow.defn(name="SendEmail")
class SendEmail:
    """Send the message from the input (already pinned by being recorded there)."""

    @workflow.init
    def __init__(self, data: SendEmailInput) -> None:
        self._delivery = Delivery(data.email_id, KIND_EMAIL, data.policy)

    @workflow.run
    async def run(self, data: SendEmailInput) -> EmailStatusResult:
        key = f"{workflow.info().workflow_id}/send"
        return await self._delivery.send(data.message, key)

    @workflow.query(name="status")
    def status(self) -> EmailStatusResult:
        """Where this email stands, with every attempt so far."""
        return self._delivery.state
