"""`SendEmail`: deliver one caller-composed email exactly once."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.delivery import Delivery
    from workflows.shared import (
        CANCEL_UPDATE,
        DELIVERY_EVENT_SIGNAL,
        KIND_EMAIL,
        CancelInput,
        CancelResult,
        DeliveryEventInput,
        EmailStatusResult,
        SendEmailInput,
    )


@workflow.defn(name="SendEmail")
class SendEmail:
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

    @workflow.query(name="status")
    def status(self) -> EmailStatusResult:
        """Where this email stands, with every attempt so far."""
        return self._delivery.state

    @workflow.signal(name=DELIVERY_EVENT_SIGNAL)
    def delivery_event(self, event: DeliveryEventInput) -> None:
        """A provider webhook event (delivered, bounced, ...), deduplicated by its id."""
        self._delivery.on_delivery_event(event)

    @workflow.update(name=CANCEL_UPDATE)
    def cancel(self, data: CancelInput) -> CancelResult:
        """Cancel a send that has not gone out (rejected once an attempt may have)."""
        return self._delivery.cancel()

    @cancel.validator
    def validate_cancel(self, data: CancelInput) -> None:
        self._delivery.check_cancellable()
