"""How a send is retried and where its tasks stand in the queues: the policy the API puts in
every workflow input, and its conversion to Temporal's task priority."""

from dataclasses import dataclass

from temporalio.common import Priority

from config import SEND_TASK_QUEUE

# Temporal's own default priority key (1 first ... 5 last).
DEFAULT_PRIORITY_KEY = 3
# Temporal caps a fairness key's length.
MAX_FAIRNESS_KEY = 64


@dataclass
class QueuePriority:
    """Where a send's tasks stand in the task queues (Temporal's task-queue priority).

    `priority_key`: 1 (first) to 5, lower goes first: transactional sends ahead of bulk.
    `fairness_key`: the tenant; backlogged tasks are dispatched across keys in proportion to
    `fairness_weight`, so one tenant's backlog cannot starve another's sends.
    """

    priority_key: int | None = None
    fairness_key: str | None = None
    fairness_weight: float | None = None


@dataclass
class DeliveryPolicy:
    """How long and how often to retry; comes from settings via the API."""

    initial_backoff_seconds: float = 2.0
    max_backoff_seconds: float = 300.0
    window_seconds: float = 23 * 3600.0
    attempt_timeout_seconds: float = 30.0
    # The queue of provider calls (rate-limited queue-wide); settings can name another.
    send_task_queue: str = SEND_TASK_QUEUE
    # How long to wait for the provider's delivery outcome (webhooks) after the send.
    delivery_wait_seconds: float = 72 * 3600.0
    # The send activity's place on the send queue (None: the workflow's own, as before).
    priority: QueuePriority | None = None


def task_priority(policy: DeliveryPolicy) -> Priority:
    """A send's place in the queues; the default (the workflow's) if the policy sets none.

    A class of work goes ahead by weight, never strictly: Temporal's `priority_key` would
    dispatch every task of a lower key before any of a higher one, so a backlog of single
    sends retrying on 429 could hold every batch back for as long as it lasts. Instead each
    (class, tenant) pair is its own fairness key, weighted 2 ** (5 - priority_key): a
    transactional send (2) gets four times a bulk one's (4) share of a backlog, a tenant's
    backlog shares the queue fairly with another tenant's, and no class starves.
    """
    wanted = policy.priority
    if wanted is None:
        return Priority.default
    key = wanted.priority_key or DEFAULT_PRIORITY_KEY
    fairness_key = f"p{key}:{wanted.fairness_key or '-'}"[:MAX_FAIRNESS_KEY]
    return Priority(
        fairness_key=fairness_key,
        fairness_weight=(wanted.fairness_weight or 1.0) * 2 ** (5 - key),
    )
