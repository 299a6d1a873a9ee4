"""The retry policy every new send carries (settings are read here, never in workflows)."""

from __future__ import annotations

from config import Settings
from workflows.types import DeliveryPolicy


def delivery_policy(settings: Settings) -> DeliveryPolicy:
    """The send's retry schedule and queue, from this deployment's settings."""
    return DeliveryPolicy(
        initial_backoff_seconds=settings.send_initial_backoff_seconds,
        max_backoff_seconds=settings.send_max_backoff_seconds,
        window_seconds=settings.send_window_seconds,
        attempt_timeout_seconds=settings.send_attempt_timeout_seconds,
        send_task_queue=settings.send_task_queue,
        delivery_wait_seconds=settings.delivery_wait_seconds,
    )
