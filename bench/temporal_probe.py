"""Subprocess entry points that talk to Temporal directly, without HTTP (bench only).

    python -m bench.temporal_probe worker --address HOST:PORT
    python -m bench.temporal_probe starts --address HOST:PORT --count 600 --concurrency 50
    python -m bench.temporal_probe starts_like_api --address HOST:PORT --count 600
    python -m bench.temporal_probe throughput --address HOST:PORT --count 600 --concurrency 50

`starts_like_api` adds what our API's start carries (a memo, two keyword search attributes,
REJECT_DUPLICATE/FAIL id policies): the gap between `starts` and it is the server's cost of
those, the gap between it and the HTTP burst is the API's.

`starts` and `throughput` print one JSON line. Every mode ends with `os._exit` after a clean
shutdown: short-lived Temporal clients can crash on interpreter exit (sdk-python#300).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from temporalio.client import Client
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.worker import Worker

from bench.minimal_workflow import TASK_QUEUE, BenchOneActivity, NoopInput, bench_noop
from workflows.search_attributes import EMAIL_KIND, EMAIL_STATUS


async def run_worker(client: Client) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    worker = Worker(
        client,
        task_queue=TASK_QUEUE,
        workflows=[BenchOneActivity],
        activities=[bench_noop],
        max_concurrent_activities=200,
    )
    async with worker:
        await stop.wait()


async def fan_out(
    count: int, concurrency: int, call: Callable[[int], Awaitable[None]]
) -> tuple[list[float], float]:
    """Run `call(i)` for i < count from `concurrency` loops; per-call seconds, total seconds."""
    latencies: list[float] = []
    next_index = 0

    async def loop() -> None:
        nonlocal next_index
        while next_index < count:
            index = next_index
            next_index += 1
            start = time.perf_counter()
            await call(index)
            latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(concurrency)))
    return latencies, time.perf_counter() - start


async def measure(client: Client, mode: str, count: int, concurrency: int) -> dict[str, Any]:
    prefix = f"bench-{mode}-{uuid.uuid4().hex[:8]}"

    async def start(i: int) -> None:
        await client.start_workflow(
            BenchOneActivity.run, NoopInput(f"{i}"), id=f"{prefix}-{i}", task_queue=TASK_QUEUE
        )

    async def start_like_api(i: int) -> None:
        await client.start_workflow(
            BenchOneActivity.run,
            NoopInput(f"{i}"),
            id=f"{prefix}-{i}",
            task_queue=TASK_QUEUE,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            memo={"request_sha256": "0" * 64},
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(EMAIL_KIND, "invite"),
                    SearchAttributePair(EMAIL_STATUS, "queued"),
                ]
            ),
        )

    async def execute(i: int) -> None:
        await client.execute_workflow(
            BenchOneActivity.run, NoopInput(f"{i}"), id=f"{prefix}-{i}", task_queue=TASK_QUEUE
        )

    call = {"starts": start, "starts_like_api": start_like_api, "throughput": execute}[mode]
    # One call first so connection setup is not counted.
    await call(-1)
    latencies, seconds = await fan_out(count, concurrency, call)
    return {
        "mode": mode,
        "count": count,
        "concurrency": concurrency,
        "seconds": seconds,
        "rate": count / seconds,
        "latencies_s": latencies,
    }


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["worker", "starts", "starts_like_api", "throughput"])
    parser.add_argument("--address", required=True)
    parser.add_argument("--count", type=int, default=600)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    client = await Client.connect(args.address)
    if args.mode == "worker":
        await run_worker(client)
    else:
        result = await measure(client, args.mode, args.count, args.concurrency)
        print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    code = asyncio.run(main())
    os._exit(code)
