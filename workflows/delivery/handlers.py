"""The queries, signals and updates of a workflow that sends one email (`SendEmail`)."""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.delivery_contract import PINNED_MESSAGE_QUERY
    from activities.types import EmailMessage
    from workflows.delivery.email import Delivery
    from workflows.types import (
        CANCEL_REQUEST_SIGNAL,
        CANCEL_UPDATE,
        DELIVERY_EVENT_SIGNAL,
        RESCHEDULE_UPDATE,
        CancelInput,
        CancelResult,
        DeliveryEventInput,
        EmailStatusResult,
        RescheduleInput,
        RescheduleResult,
    )

NO_PINNED_MESSAGE = "NoPinnedMessage"


def pinned_of(deliveries: list[Delivery], digest: str | None) -> EmailMessage:
    """The `pinned_message` query's answer: the message of `digest` among the workflow's."""
    for delivery in deliveries:
        message = delivery.pinned_message(digest)
        if message is not None:
            return message
    raise ApplicationError("no such message is pinned here", type=NO_PINNED_MESSAGE)


class EmailHandlers:
    """Mixin of a one-email workflow's handlers (status and pinned-message queries,
    delivery-event and cancel-request signals, cancel and reschedule updates); the
    workflow class sets `_delivery` in its `__init__`."""

    _delivery: Delivery

    @workflow.query(name="status")
    def status(self) -> EmailStatusResult:
        """Where this email stands, with every attempt so far."""
        return self._delivery.state

    @workflow.query(name=PINNED_MESSAGE_QUERY)
    def pinned_message(self, digest: str | None = None) -> EmailMessage:
        """The message this send pinned: the send activity reads it here, not in its input."""
        return pinned_of([self._delivery], digest)

    @workflow.signal(name=DELIVERY_EVENT_SIGNAL)
    def delivery_event(self, event: DeliveryEventInput) -> None:
        """A provider webhook event (delivered, bounced, ...), counted once."""
        self._delivery.on_delivery_event(event)

    @workflow.signal(name=CANCEL_REQUEST_SIGNAL)
    def cancel_request(self, data: CancelInput) -> None:
        """A cancel no worker could answer at once: applied when the workflow next runs, if
        the email has not gone out by then (else only noted in the status)."""
        self._delivery.on_cancel_request()

    @workflow.update(name=CANCEL_UPDATE)
    def cancel(self, data: CancelInput) -> CancelResult:
        """Cancel a send that has not gone out (rejected once an attempt may have)."""
        return self._delivery.cancel()

    @cancel.validator
    def validate_cancel(self, data: CancelInput) -> None:
        self._delivery.check_cancellable()

    @workflow.update(name=RESCHEDULE_UPDATE)
    def reschedule(self, data: RescheduleInput) -> RescheduleResult:
        """Move a scheduled send to another time (rejected once it is due or cancelled)."""
        return self._delivery.reschedule(data.send_at)

    @reschedule.validator
    def validate_reschedule(self, data: RescheduleInput) -> None:
        self._delivery.check_reschedulable(data.send_at)
