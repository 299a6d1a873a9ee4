"""The suppression list's two steps in an email's delivery: the check before the first
attempt (a listed recipient ends the email `suppressed`, no provider call) and the automatic
add after a permanent bounce or a complaint. Each is one local activity on the workflow's
worker; both came after 1.0 (`workflows.delivery.changes`)."""

from __future__ import annotations

from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.suppressions import (
        CHECK_RETRY,
        CHECK_TIMEOUT,
        SuppressAddressesInput,
        SuppressionActivities,
    )
    from activities.types import EmailMessage, SendAttemptResult
    from workflows.delivery.changes import SUPPRESSION_ADD, changed
    from workflows.delivery.events import suppression_origin
    from workflows.delivery.loop import SUPPRESSED, ProviderCall
    from workflows.status import SendStatus
    from workflows.types import EmailError, EmailStatusResult


class SuppressionSteps(ProviderCall[SendAttemptResult]):
    """The suppression steps of one email's call (`Delivery` is one)."""

    state: EmailStatusResult
    message: EmailMessage | None
    _suppression_checked: bool

    def _count(self, outcome: SendStatus) -> None:
        raise NotImplementedError

    def app_event(self, event_type: str, **data: Any) -> None:
        raise NotImplementedError

    async def suppress_if_refused(self) -> None:
        """A permanent bounce or a complaint puts the `to` addresses on the tenant's list."""
        origin = suppression_origin(self.state)
        if origin is None or self.message is None or self.state.tenant_id is None:
            return  # lists are per tenant: a send without one has none
        if not changed(SUPPRESSION_ADD):
            return
        try:
            await workflow.execute_local_activity_method(
                SuppressionActivities.suppress_addresses,
                SuppressAddressesInput(
                    self.state.tenant_id, self.message.to, origin, self.state.id
                ),
                start_to_close_timeout=CHECK_TIMEOUT,
                retry_policy=CHECK_RETRY,
            )
        except ActivityError:
            workflow.logger.warning(
                "recipients of %s not suppressed: the list failed", self.state.id
            )

    async def held_back(self) -> bool:
        """A recipient (to, cc or bcc) on the tenant's suppression list: the email ends
        `suppressed` without a provider call (checked once, by the loop's step)."""
        if self.message is None or self._suppression_checked:
            return False
        self._suppression_checked = True
        message = self.message
        found = await self.suppressed_among(
            self.state.tenant_id, [*message.to, *message.cc, *message.bcc]
        )
        if not found:
            return False
        self.state.last_error = EmailError(
            SUPPRESSED,
            f"{len(found)} recipient(s) on this tenant's suppression list; nothing was sent",
        )
        self.set_status(SendStatus.SUPPRESSED)
        self._count(SendStatus.SUPPRESSED)
        self.upsert_status()
        self.app_event("email.suppressed")
        return True
