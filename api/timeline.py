"""The story of one send, oldest first, built from the workflow's recorded state.

The workflow records every attempt and every provider event with its time (see
`workflows/delivery.py`), so the timeline costs one query (or one result read) and tells
the same story as the workflow's history in the Web UI.
"""

from __future__ import annotations

from api.answers import TimelineEvent
from workflows.status import SendStatus
from workflows.types import AttemptRecord, EmailStatusResult


def timeline(state: EmailStatusResult) -> list[TimelineEvent]:
    """accepted, scheduled, each attempt, sent, each delivery event, failed/undetermined,
    cancel requested, cancelled. Attempts and events dropped from the middle of a long
    story (the workflow keeps the first and the latest) are one line with their count."""
    events = [TimelineEvent(at=state.created_at, type="accepted")]
    if state.send_at:
        events.append(TimelineEvent(at=state.created_at, type="scheduled", detail=state.send_at))
    events += _attempts(state.attempts)
    if state.sent_at:
        sent = TimelineEvent(at=state.sent_at, type="sent")
        events.append(_reached(sent, state, state.provider or state.transport))
    events += [
        TimelineEvent(
            at=event.received_at,
            type="delivery",
            event_type=event.type,
            event_id=event.event_id,
            detail=event.detail,
        )
        for event in state.delivery_events
    ]
    if state.delivery_events_omitted:
        omitted = f"{state.delivery_events_omitted} delivery events not kept"
        events.append(
            TimelineEvent(at=state.updated_at, type="delivery_events_omitted", detail=omitted)
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


def _attempts(attempts: list[AttemptRecord]) -> list[TimelineEvent]:
    """Each kept attempt, and one line for each run of attempts not kept."""
    events: list[TimelineEvent] = []
    previous = 0
    for attempt in attempts:
        if attempt.attempt > previous + 1:
            omitted = f"attempts {previous + 1} to {attempt.attempt - 1} not kept"
            events.append(
                TimelineEvent(at=attempt.scheduled_at, type="attempts_omitted", detail=omitted)
            )
        previous = attempt.attempt
        event = TimelineEvent(
            at=attempt.finished_at,
            type="attempt",
            attempt=attempt.attempt,
            outcome=attempt.outcome,
            http_status=attempt.http_status,
            error_type=attempt.error_type,
            detail=attempt.error_message,
        )
        events.append(_reached(event, attempt, attempt.provider))
    return events


def _reached(
    event: TimelineEvent, source: AttemptRecord | EmailStatusResult, provider: str | None
) -> TimelineEvent:
    """`event` with the provider it reached, its id there, and the provider the failover
    transport moved it from (and why)."""
    event.provider_message_id = source.provider_message_id
    event.provider = provider
    event.failover_from = source.failover_from
    event.failover_reason = source.failover_reason
    return event
