"""`AppEvents`: how an email's workflow hands its events to the app's webhooks.

One call per event (`emit`), from any handler, sync or async: the event is queued and one
task hands the queue over in order, all that is queued in one local activity
(`emit_app_event`, which does nothing when no endpoint of the tenant wants those types).
Local: no task queue round trip, and a marker in history instead of three events; batched:
a flood of provider events costs a marker per batch. The event's id is drawn from the
workflow's deterministic uuid, so a retried hand-over is recognised by the delivery
workflow, and the app sees one svix-id per event. The workflow waits for `drained()`
before it ends or continues as new, so an emitted event is not dropped.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.app_webhook_types import AppEvent, EmitInput
    from activities.app_webhooks import AppWebhookActivities
    from activities.types import EmailMessage
    from workflows.batch_types import BatchStatusResult
    from workflows.delivery.changes import APP_EVENTS_PATCH, changed
    from workflows.delivery.history import iso
    from workflows.status import SendStatus
    from workflows.types import DeliveryEventInput, EmailStatusResult


# Retried until Temporal answers: an event is handed over or the workflow does not end.
EMIT_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1)
)

# Events handed over per local activity (bounds its input and the signal it sends).
MAX_BATCH = 100
BOUNCE_MESSAGE = "The recipient's mail server rejected the email"
# An unsent end that may have gone out: handed over like any event (the hand-over is a command
# whichever ending a run reaches) but wanted by no endpoint (not one of Resend's types).
UNDETERMINED_APP_EVENT = "email.undetermined"


def app_event_data(
    state: EmailStatusResult | BatchStatusResult,
    message: EmailMessage | None,
    extra: dict[str, Any],
) -> dict[str, Any]:
    """An email event's `data` as Resend sends it (`email_id` is added by `emit`)."""
    data: dict[str, Any] = {"created_at": state.created_at}
    if message is not None:
        data.update({"from": message.sender, "to": list(message.to), "subject": message.subject})
        if message.tags:
            data["tags"] = {tag.name: tag.value for tag in message.tags}
    return {**data, **extra}


def unsent_event(status: SendStatus) -> str:
    """The app event of an unsent end: `email.failed` only when provably not sent."""
    return "email.failed" if status == SendStatus.FAILED else UNDETERMINED_APP_EVENT


def forwarded(event: DeliveryEventInput) -> dict[str, Any]:
    """What a provider event adds to the app's event (a bounce's classification)."""
    if event.type != "email.bounced":
        return {}
    kind, _, sub_kind = (event.detail or "").partition("/")
    return {"bounce": {"type": kind, "subType": sub_kind, "message": BOUNCE_MESSAGE}}


class AppEvents:
    """The events of one email (or of each email of a batch) for the app, in the order
    they happened."""

    def __init__(self, tenant_id: str | None, email_id: str) -> None:
        self._tenant_id = tenant_id
        self._email_id = email_id
        self._queue: list[AppEvent] = []
        self._task: asyncio.Task[None] | None = None

    def emit(self, event_type: str, data: dict[str, Any], email_id: str | None = None) -> None:
        """Queue an event (Resend's shape: `data` gets our `email_id`: this email's, or the
        batch item's given)."""
        if not changed(APP_EVENTS_PATCH):
            return
        event = AppEvent(
            id=f"msg_{workflow.uuid4().hex}",
            type=event_type,
            created_at=iso(workflow.now()),
            data={"email_id": email_id or self._email_id, **data},
        )
        self._queue.append(event)
        if self._task is None:
            self._task = asyncio.create_task(self._hand_over())

    @property
    def handing_over(self) -> bool:
        """Whether a hand-over (a local activity) is under way."""
        return self._task is not None

    async def drained(self) -> None:
        """Until every queued event is handed over (at once when nothing is queued: a wait
        would end the workflow a task later than before app events, a change of commands)."""
        if self.handing_over:
            await workflow.wait_condition(lambda: not self.handing_over)

    async def _hand_over(self) -> None:
        # Everything queued goes in one local activity: a flood of provider events costs one
        # marker per batch, not one per event (the email's history stays bounded).
        try:
            while self._queue:
                batch = self._queue[:MAX_BATCH]
                await workflow.execute_local_activity_method(
                    AppWebhookActivities.emit,
                    EmitInput(self._tenant_id, self._email_id, batch),
                    start_to_close_timeout=timedelta(seconds=10),
                    retry_policy=EMIT_RETRY,
                    summary=", ".join(dict.fromkeys(event.type for event in batch)),
                )
                del self._queue[: len(batch)]
        finally:
            self._task = None
