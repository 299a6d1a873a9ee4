"""`SendInviteEmail`: render an invitation once, then send it exactly once and track it."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import NoReturn

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.delivery_contract import SendKind
    from activities.render import render_invite
    from activities.types import EmailMessage
    from workflows.delivery import Delivery, EmailHandlers
    from workflows.types import ContinuedDelivery, EmailStatusResult, SendInviteEmailInput

RENDER_RETRY = RetryPolicy(maximum_attempts=3, initial_interval=timedelta(milliseconds=200))


@workflow.defn(name="SendInviteEmail")
class SendInviteEmail(EmailHandlers):
    """Render the invitation (a local activity whose recorded result pins the exact bytes),
    then send it through the shared delivery loop."""

    @workflow.init
    def __init__(self, data: SendInviteEmailInput) -> None:
        async def continue_as_new(accepted_at: str, carried: ContinuedDelivery) -> NoReturn:
            workflow.continue_as_new(replace(data, accepted_at=accepted_at, continued=carried))

        self._delivery = Delivery(
            data.invite_id,
            SendKind.INVITE,
            data,
            accepted_at=data.accepted_at,
            continued=data.continued,
            continue_as_new=continue_as_new,
        )

    @workflow.run
    async def run(self, data: SendInviteEmailInput) -> EmailStatusResult:
        async def render() -> EmailMessage:
            rendered = await workflow.execute_local_activity(
                render_invite,
                data.render_input(),
                start_to_close_timeout=timedelta(seconds=10),
                retry_policy=RENDER_RETRY,
            )
            return rendered.message

        # Rendered once, when due; a run that continued as new carries the rendered message.
        return await self._delivery.run(render)
