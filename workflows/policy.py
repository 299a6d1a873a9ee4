"""How a send is retried and where its tasks stand in the queues: the policy the API puts in
every workflow input, and its conversion to Temporal's task priority."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from temporalio.common import Priority

from config import MAX_FAIRNESS_KEY, SEND_TASK_QUEUE

# Temporal's own default priority key (1 first ... 5 last).
DEFAULT_PRIORITY_KEY = 3


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
    # Due single sends share provider batch calls through this many coalescers (0: never).
    coalesce_shards: int = 0


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


class Waiting(Protocol):
    """A message waiting for a call: its class of work, its tenant and its size."""

    @property
    def priority_key(self) -> int: ...
    @property
    def fairness_key(self) -> str: ...
    @property
    def size(self) -> int: ...


W = TypeVar("W", bound=Waiting)


def compose(waiting: Sequence[W], max_items: int, max_bytes: int) -> tuple[list[W], list[W]]:
    """The next call's messages, and the ones left waiting (in their order).

    Priority first (a transactional message before any bulk one); within a priority, the
    tenants take turns, one message each, in the order their first message arrived, so one
    tenant's thousands cannot hold another's single send back. A message that would pass
    `max_bytes` waits for the next call (one alone always goes)."""
    by_class: dict[int, dict[str, list[W]]] = {}
    for item in waiting:
        key = item.priority_key or DEFAULT_PRIORITY_KEY
        by_class.setdefault(key, {}).setdefault(item.fairness_key, []).append(item)
    chosen: list[W] = []
    size = 0
    for key in sorted(by_class):
        queues = list(by_class[key].values())
        while queues and len(chosen) < max_items:
            for queue in list(queues):
                if len(chosen) >= max_items:
                    break
                item = queue[0]
                if chosen and size + item.size > max_bytes:
                    queues.remove(queue)
                    continue
                chosen.append(queue.pop(0))
                size += item.size
                if not queue:
                    queues.remove(queue)
    taken = {id(item) for item in chosen}
    return chosen, [item for item in waiting if id(item) not in taken]
