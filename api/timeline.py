"""The story of one send, oldest first, built from the workflow's recorded state.

The workflow records every attempt and every provider event with its time (see
`workflows/delivery.py`), so the timeline costs one query (or one result read) and tells
the same story as the workflow's history in the Web UI.
"""

from __future__ import annotations

from api.answers import TimelineEvent
from workflows.status import SendStatus
from workflows.types import EmailStatusResult


def timeline(state: EmailStatusResult) -> list[TimelineEvent]:
    """accepted, scheduled, each attempt, sent, each delivery event, failed/undetermined,
    cancel requested, cancelled. Attempts and events dropped from the middle of a long
    story (the workflow keeps the first and the latest) are one line with their count."""
    events = [TimelineEvent(at=state.created_at, type="accepted")]
    if state.send_at:
        events.append(TimelineEvent(at=state.created_at, type="scheduled", detail=state.send_at))
    previous = 0
    for attempt in state.attempts:
        if attempt.attempt > previous + 1:
            events.append(
                TimelineEvent(
                    at=attempt.scheduled_at,
                    type="attempts_omitted",
                    detail=f"attempts {previous + 1} to {attempt.attempt - 1} not kept",
                )
            )
        previous = attempt.attempt
        events.append(
            TimelineEvent(
                at=attempt.finished_at,
                type="attempt",
                attempt=attempt.attempt,
                outcome=attempt.outcome,
                http_status=attempt.http_status,
                error_type=attempt.error_type,
                detail=attempt.error_message,
                provider_message_id=attempt.provider_message_id,
                provider=attempt.provider,
                failover_from=attempt.failover_from,
                failover_reason=attempt.failover_reason,
            )
        )
    if state.sent_at:
        events.append(
            TimelineEvent(
                at=state.sent_at,
                type="sent",
                provider_message_id=state.provider_message_id,
                provider=state.provider or state.transport,
                failover_from=state.failover_from,
                failover_reason=state.failover_reason,
            )
        )
    for event in state.delivery_events:
        events.append(
            TimelineEvent(
                at=event.received_at,
                type="delivery",
                event_type=event.type,
                event_id=event.event_id,
                detail=event.detail,
            )
        )
    if state.delivery_events_omitted:
        events.append(
            TimelineEvent(
                at=state.updated_at,
                type="delivery_events_omitted",
                detail=f"{state.delivery_events_omitted} delivery events not kept",
            )
        )
    unsent = {SendStatus.FAILED: "failed", SendStatus.UNDETERMINED: "undetermined"}
    if state.status in unsent and state.last_error and not state.sent_at:
        events.append(
            TimelineEvent(
                at=state.updated_at,
                type=unsent[state.status],
                error_type=state.last_error.type,
                detail=state.last_error.message,
            )
        )
    if state.cancel_requested_at:
        events.append(TimelineEvent(at=state.cancel_requested_at, type="cancel_requested"))
    if state.status == SendStatus.CANCELLED:
        events.append(TimelineEvent(at=state.cancelled_at, type="cancelled"))
    # Stable sort: an event received before the send was recorded still shows after `sent`
    # only if its time says so.
    return sorted(events, key=lambda e: e.at or "")
