"""Bounded history: when a run continues as new, how lists are kept short, durable waits.

A run continues as new before its history nears Temporal's limits (`RUN_EVENT_BUDGET`,
`RUN_SIZE_BUDGET`, or the server's suggestion). Lists that grow with the provider's
behaviour (attempts, delivery events) keep their first few and latest entries, with counts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol, TypeVar

from temporalio import workflow

# Far below Temporal's limits (51,200 events, 50 MB) and within our design limits (10,000
# events, 10 MB per run) even with the largest message in the input.
RUN_EVENT_BUDGET = 4_000
RUN_SIZE_BUDGET = 4 * 1024 * 1024
# Never continue as new from a run that has done nothing yet.
MIN_RUN_EVENTS = 100
KEEP_FIRST_ATTEMPTS = 3
KEEP_LAST_ATTEMPTS = 20
KEEP_FIRST_EVENTS = 5
KEEP_LAST_EVENTS = 20

T = TypeVar("T")


def iso(moment: datetime) -> str:
    return moment.isoformat()


def history_full() -> bool:
    """Whether this run's history has reached its budget (time to continue as new)."""
    info = workflow.info()
    if info.get_current_history_length() < MIN_RUN_EVENTS:
        return False
    return (
        info.is_continue_as_new_suggested()
        or info.get_current_history_length() >= RUN_EVENT_BUDGET
        or info.get_current_history_size() >= RUN_SIZE_BUDGET
    )


def keep(items: list[T], item: T, first: int, last: int) -> int:
    """Append `item`, keeping the first `first` and the last `last`; how many were dropped."""
    items.append(item)
    if len(items) <= first + last:
        return 0
    del items[first]
    return 1


async def wait_until(condition: Callable[[], bool], timeout: timedelta) -> bool:
    """True once `condition` holds, False when the (single, durable) timer fires first."""
    try:
        await workflow.wait_condition(condition, timeout=timeout)
    except asyncio.TimeoutError:  # noqa: UP041 (the name TimeoutError is temporalio's here)
        return False
    return True


class HandsOver(Protocol):
    """A send that hands app events over (`Delivery`, `BatchCall`)."""

    @property
    def handing_over(self) -> bool: ...


async def settled(*holders: HandsOver) -> None:
    """Before a workflow that holds sends ends: its handlers have finished and no send is
    handing app events over. A handler (a revoke) can cancel a send and so start a
    hand-over after the run's own wait: ending then put the local activity's marker after the
    completion, and the server refused the task ("invalid command sequence", a revoke seen
    as 503). At once when both already hold, as the plain handlers' wait was."""
    await workflow.wait_condition(
        lambda: workflow.all_handlers_finished() and not any(h.handing_over for h in holders)
    )


async def handlers_done_then_log(what: str, ident: str, attempts: int) -> None:
    """Before continuing as new: let running handlers finish, and say why in the log."""
    await workflow.wait_condition(workflow.all_handlers_finished)
    info = workflow.info()
    workflow.logger.info(
        "%s %s continues as new after %d events (%d bytes), %d attempts",
        what,
        ident,
        info.get_current_history_length(),
        info.get_current_history_size(),
        attempts,
    )
    workflow.metric_meter().create_counter(
        "email_continued_as_new", "Runs that continued as new to bound history", "{run}"
    ).add(1, {"kind": what})
