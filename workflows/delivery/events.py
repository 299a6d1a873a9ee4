"""Delivery events (the provider's webhooks): one dedupe rule and one status rule for every
workflow, a single email's as a batch item's.

Webhooks are delivered at least once, so an event can arrive again, long after a flood of
others. Each event counts once, by a compact key of what identifies it (the message it is
about and its webhook id), kept in a bounded structure (`SeenEvents`) that every run hands
the next: exact for the last `MAX_SEEN_EVENTS` events; when a key has to give way, its
`occurred_at` raises the watermark, and an event that occurred at or before it counts as
seen. So a repeat is recognised after any flood, and history stays bounded (about 45 KB at
most); the price is that an event first delivered after `MAX_SEEN_EVENTS` newer ones, and
older than all of them, is taken for a repeat: it could not change the status anyway.
"""

from __future__ import annotations

import hashlib

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.suppressions import SuppressionOrigin
    from workflows.batch_types import BatchItemState
    from workflows.delivery.history import KEEP_FIRST_EVENTS, KEEP_LAST_EVENTS, iso, keep
    from workflows.status import DELIVERY_EVENT_STATUS, FINAL_DELIVERY_STATUSES, SendStatus
    from workflows.types import (
        DeliveryEventInput,
        DeliveryEventRecord,
        EmailStatusResult,
        SeenEvents,
    )

MAX_SEEN_EVENTS = 1_000
# 48 bits of a digest: among 1,000 keys the odds of a collision are about 1 in 500 million.
KEY_CHARS = 12


# Provider events that change no status but reach the app's webhooks (docs/webhooks.md).
APP_ONLY_EVENTS = frozenset({"email.opened", "email.clicked"})


def forwarded_only(event: DeliveryEventInput) -> bool:
    """Whether the event is only handed to the app's webhooks (it moves no status)."""
    return event.type in APP_ONLY_EVENTS


def tracked(event: DeliveryEventInput) -> bool:
    """Whether the event is one that moves a send's status (others are acknowledged only)."""
    return event.type in DELIVERY_EVENT_STATUS


def suppression_origin(state: EmailStatusResult | BatchItemState) -> SuppressionOrigin | None:
    """Why a send's recipients join its tenant's suppression list, if they do: it ended
    `complained`, or `bounced` with a permanent bounce (Resend's `bounce.type` Permanent;
    a transient or undetermined bounce may pass)."""
    if state.status == SendStatus.COMPLAINED:
        return SuppressionOrigin.COMPLAINT
    if state.status != SendStatus.BOUNCED:
        return None
    bounced = [r for r in state.delivery_events if DELIVERY_EVENT_STATUS.get(r.type) == "bounced"]
    permanent = bool(bounced) and (bounced[-1].detail or "").startswith("Permanent")
    return SuppressionOrigin.BOUNCE if permanent else None


def record_of(event: DeliveryEventInput) -> DeliveryEventRecord:
    return DeliveryEventRecord(
        event_id=event.event_id,
        type=event.type,
        received_at=iso(workflow.now()),
        occurred_at=event.occurred_at,
        detail=event.detail,
    )


def keep_event(events: list[DeliveryEventRecord], event: DeliveryEventInput) -> int:
    """Record a tracked event (`events` keeps the first few and the latest: returns how many
    it dropped) and count it in the worker's metrics."""
    workflow.metric_meter().create_counter(
        "email_delivery_events", "Provider delivery events by type", "{event}"
    ).add(1, {"type": event.type})
    return keep(events, record_of(event), KEEP_FIRST_EVENTS, KEEP_LAST_EVENTS)


def next_status(current: SendStatus, event_type: str) -> SendStatus | None:
    """The status an event gives a send that has gone out, or None if it changes nothing
    (a late `delivery_delayed` does not undo `delivered`)."""
    status = DELIVERY_EVENT_STATUS[event_type]
    if current in FINAL_DELIVERY_STATUSES and status not in FINAL_DELIVERY_STATUSES:
        return None
    return None if status == current else status


class Dedupe:
    """The one dedupe rule (see the module docstring); `carry()` goes into the next run."""

    def __init__(self, carried: SeenEvents | None) -> None:
        self._seen = carried if carried is not None else SeenEvents()
        self._keys = {entry.split("|", 1)[0] for entry in self._seen.keys}

    def first_time(self, message: str, event: DeliveryEventInput) -> bool:
        """True the first time this event about `message` arrives (and remembers it)."""
        key = hashlib.sha256(f"{message}\n{event.event_id}".encode()).hexdigest()[:KEY_CHARS]
        if key in self._keys:
            return False
        watermark, occurred = self._seen.watermark, event.occurred_at
        if watermark is not None and occurred is not None and occurred <= watermark:
            return False
        self._keys.add(key)
        self._seen.keys.append(f"{key}|{occurred or ''}")
        if len(self._seen.keys) > MAX_SEEN_EVENTS:
            oldest, _, oldest_at = self._seen.keys.pop(0).partition("|")
            self._keys.discard(oldest)
            if oldest_at and (watermark is None or oldest_at > watermark):
                self._seen.watermark = oldest_at
        return True

    def carry(self) -> SeenEvents:
        return self._seen
