"""`SendEmail`: send one caller-composed email exactly once, then track its delivery."""

from __future__ import annotations

from dataclasses import replace
from typing import NoReturn

from temporalio import workflow
from temporalio.common import VersioningBehavior

with workflow.unsafe.imports_passed_through():
    from activities.delivery_contract import SendKind
    from workflows.coalesce.handlers import CoalescedHandlers
    from workflows.delivery.email import Delivery
    from workflows.delivery.handlers import EmailHandlers
    from workflows.types import ContinuedDelivery, EmailStatusResult, SendEmailInput


# Pinned: a send lives hours at most, so it finishes on the build that started it.
@workflow.defn(name=SendEmailInput.WORKFLOW, versioning_behavior=VersioningBehavior.PINNED)
class SendEmail(EmailHandlers, CoalescedHandlers):
    """Send the message from the input (already pinned by being recorded there)."""

    @workflow.init
    def __init__(self, data: SendEmailInput) -> None:
        async def continue_as_new(accepted_at: str, carried: ContinuedDelivery) -> NoReturn:
            workflow.continue_as_new(replace(data, accepted_at=accepted_at, continued=carried))

        self._delivery = Delivery(
            data.email_id,
            SendKind.EMAIL,
            data,
            data.message,
            accepted_at=data.accepted_at,
            continued=data.continued,
            continue_as_new=continue_as_new,
        )

    @workflow.run
    async def run(self, data: SendEmailInput) -> EmailStatusResult:
        return await self._delivery.run()
