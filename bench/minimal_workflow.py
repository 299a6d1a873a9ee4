"""The yardstick workflow: one no-op activity, on its own task queue (bench only).

Its completions per second on the same dev server are what "the server can do" for a
one-activity workflow; its bare starts per second are the ceiling of a durable accept.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from temporalio import activity, workflow

TASK_QUEUE = "bench-minimal"


@dataclass
class NoopInput:
    invite_id: str


@activity.defn
async def bench_noop(arg: NoopInput) -> str:
    """Does nothing: the activity round trip alone."""
    return arg.invite_id


@workflow.defn
class BenchOneActivity:
    """Runs `bench_noop` once."""

    @workflow.run
    async def run(self, arg: NoopInput) -> str:
        return await workflow.execute_activity(
            bench_noop, arg, start_to_close_timeout=timedelta(seconds=30)
        )
