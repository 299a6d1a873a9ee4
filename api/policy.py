"""The retry policy and queue priority every new send carries (settings are read here, never
in workflows), and the start's place in Temporal's queues."""

from __future__ import annotations

from temporalio.common import Priority

from config import Settings
from workflows.policy import DeliveryPolicy, QueuePriority, task_priority

# Temporal's priority keys run from 1 (first) to 5; unset is 3. Transactional sends (one
# email, one invite) go ahead of bulk ones (batches), and of sends started before priorities.
TRANSACTIONAL_PRIORITY = 2
BULK_PRIORITY = 4


def delivery_policy(settings: Settings, priority: QueuePriority | None = None) -> DeliveryPolicy:
    """The send's retry schedule, queue and queue priority, from this deployment's settings."""
    return DeliveryPolicy(
        initial_backoff_seconds=settings.send_initial_backoff_seconds,
        max_backoff_seconds=settings.send_max_backoff_seconds,
        window_seconds=settings.send_window_seconds,
        attempt_timeout_seconds=settings.send_attempt_timeout_seconds,
        send_task_queue=settings.send_task_queue,
        delivery_wait_seconds=settings.delivery_wait_seconds,
        priority=priority,
        coalesce_shards=settings.coalesce_shards,
    )


def transactional(fairness_key: str) -> QueuePriority:
    """A single send's place: ahead of bulk, shared fairly with other tenants' sends."""
    return QueuePriority(priority_key=TRANSACTIONAL_PRIORITY, fairness_key=fairness_key)


def bulk(fairness_key: str) -> QueuePriority:
    """A batch's place: behind transactional sends, shared fairly with other tenants' batches."""
    return QueuePriority(priority_key=BULK_PRIORITY, fairness_key=fairness_key)


def fairness_key(caller_scope: str, tenant_id: str | None) -> str:
    """Whose share of the send queue a send takes: its tenant's, else its API key's."""
    return tenant_id or caller_scope


def start_priority(policy: DeliveryPolicy) -> Priority:
    """The workflow's own place in the queues: its provider calls' (`task_priority`, the rule
    the workflow applies to them), so its workflow tasks are ordered as its calls are and a
    tenant's backlog of new sends cannot hold another's back."""
    return task_priority(policy)
