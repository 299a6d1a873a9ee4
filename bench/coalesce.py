"""Coalescing at the provider's limit (docs/coalescing.md): side by side, one run, one machine.

    python -m bench.coalesce                       # 1,000 invites, ~4 min on 2 cores
    python -m bench.coalesce --big 10000           # and 10,000 coalesced invites

The fake Resend is limited to 2 requests/s (429 with retry-after beyond) and answers in
0.1 s. Each system gets the same single `POST /v1/invites` at 20 in flight:

- durable-mail with each single send its own provider call (`COALESCE_SHARDS=0`, 1.0);
- durable-mail coalescing single sends into batch calls (`COALESCE_SHARDS=2`);
- `POST /v1/invites/batch` (100 per request), the app batching for us;
- the seeds' designs (BackgroundTasks, a thread per email, fire-and-forget tasks), which
  call the provider directly: what the provider refuses with 429 is lost.

Then 20 lone invites at idle, one every 1.5 s: accept -> provider p50/p99. And history
events and workflow tasks per delivered email for each of our three ways (the coalescers'
own histories counted in). Every process is started on loopback and stopped by PID.

First, on the same fresh dev server, its floor: as many workflows as invites, each one
no-op activity and nothing else (`bench/minimal_workflow.py`: no HTTP, no email, no
coalescer), executed at the same 20 in flight. A single invite is a workflow of its own
(its id is its idempotency key), so no design of ours delivers N single invites faster
than this server completes N of those.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from temporalio.client import Client

from activities.coalesce_types import coalescer_id
from bench.bulk import server_work
from bench.scenarios import BASELINES
from bench.stack import (
    OUR_SEND_QUEUE,
    STARTED,
    baseline_env,
    our_env,
    start_dev_server,
    start_minimal_worker,
    start_our_api,
    start_our_worker,
    start_probe,
    start_uvicorn,
)
from bench.stack import stop_all as stop_started
from infra.codec import new_codec_key
from testkit.dev_server import DevServer
from testkit.fake_resend import FakeResendProcess
from testkit.keys import API_KEY
from testkit.polling import ConditionTimeout, eventually

RATE = 2.0
LATENCY = 0.1
IN_FLIGHT = 20
SHARDS = 2
FLOOR = "server floor: one no-op activity per workflow, no HTTP"
SEEDS = ("background_tasks", "thread_per_email", "asyncio_task")
HEADERS = {"Authorization": f"Bearer {API_KEY}"}


def invite(tag: str, n: int) -> dict[str, str]:
    return {"email": f"{tag}-{n}@bench.example", "tenant_name": "Acme", "inviter_name": "Bob"}


async def burst(url: str, tag: str, count: int, *, batch: int = 0) -> tuple[float, list[str]]:
    """`count` invites at `IN_FLIGHT` requests in flight (or batches of `batch`); the wall
    clock of the first accept, and the workflow ids the answers name. Prints how long the
    accepts took (the API's share of the time to the last delivery)."""
    queue: asyncio.Queue[list[int]] = asyncio.Queue()
    step = batch or 1
    for start in range(0, count, step):
        queue.put_nowait(list(range(start, min(start + step, count))))
    first: list[float] = []
    workflow_ids: list[str] = []
    refused: list[int] = []

    async def sender(http: httpx.AsyncClient) -> None:
        while not queue.empty():
            numbers = queue.get_nowait()
            if batch:
                body: Any = {"invites": [invite(tag, n) for n in numbers]}
                response = await http.post("/v1/invites/batch", json=body)
            else:
                response = await http.post("/v1/invites", json=invite(tag, numbers[0]))
            if response.status_code == 202:
                first.append(time.time())
                workflow_ids.append(response.json().get("workflow_id", ""))
            else:
                refused.append(response.status_code)

    async with httpx.AsyncClient(base_url=url, headers=HEADERS, timeout=60) as http:
        await asyncio.gather(*(sender(http) for _ in range(IN_FLIGHT)))
    if refused:
        print(f"{tag}: {len(refused)} requests refused, HTTP {sorted(set(refused))}", flush=True)
    if first:
        print(f"{tag}: {len(first)} accepted in {max(first) - min(first):.1f} s", flush=True)
    return min(first) if first else time.time(), workflow_ids


async def provider_figures(
    fake: FakeResendProcess, tag: str, count: int, first: float, timeout: float
) -> dict[str, Any]:
    """Wait until `count` of `tag`'s emails reached the provider (or `timeout`), then count."""

    async def mine() -> list[Any]:
        return [d for d in await fake.client.deliveries() if d.to[0].startswith(f"{tag}-")]

    async def arrived() -> bool:
        return len({d.to[0] for d in await mine()}) >= count

    try:
        await eventually(arrived, timeout=timeout, interval=0.5, what=f"{count} of {tag}")
    except ConditionTimeout:
        pass
    deliveries = await mine()
    stats = await fake.client.stats()
    recipients = {d.to[0] for d in deliveries}
    last = max((d.received_at_wall for d in deliveries), default=first)
    return {
        "emails": count,
        "delivered": len(recipients),
        "duplicates": len(deliveries) - len(recipients),
        "seconds_to_last": round(last - first, 1),
        "provider_requests": stats.requests,
        "http_429": stats.by_status.get(429, 0),
    }


async def coalescer_ids(client: Client) -> list[str]:
    found = []
    for shard in range(SHARDS):
        workflow_id = coalescer_id(OUR_SEND_QUEUE, shard)
        try:
            await client.get_workflow_handle(workflow_id).describe()
            found.append(workflow_id)
        except Exception:  # noqa: BLE001 (a shard that never started)
            continue
    return found


async def ours(
    client: Client,
    fake: FakeResendProcess,
    log_dir: Path,
    env: dict[str, str],
    plan: list[tuple[str, int, int, int]],
    workers: int = 1,
    big_wait: float = 0,
) -> dict[str, dict[str, Any]]:
    """Each (label, shards, invites, batch) of `plan` on `workers` workers, an API of its own (the
    API puts `COALESCE_SHARDS` in each send's policy: the worker needs no setting)."""
    results: dict[str, dict[str, Any]] = {}
    for n in range(workers):
        await start_our_worker(client, log_dir, env, f"worker{n or ''}")
    for label, shards, count, batch in plan:
        await fake.client.reset()
        api, url = await start_our_api(log_dir, {**env, "COALESCE_SHARDS": str(shards)})
        tag = "".join(c if c.isalnum() else "-" for c in label).strip("-")
        first, workflow_ids = await burst(url, tag, count, batch=batch)
        timeout = 60 + (count / RATE if shards == 0 and not batch else count / 50)
        if label == "coalesced 10k" and big_wait:
            timeout = big_wait
        figures = await provider_figures(fake, tag, count, first, timeout)
        if label != "coalesced 10k":
            extra = await coalescer_ids(client) if shards else []
            work = await server_work(client, [*workflow_ids, *extra], figures["delivered"])
            figures |= {k: round(v, 1) for k, v in work.items() if k.endswith("per_email")}
        if shards and label == "coalesced":
            figures |= await lone_probes(url, fake, 20)
            figures |= await coalescer_peak(client)
        results[label] = figures
        print(label, figures, flush=True)
        await api.stop()
    return results


async def coalescer_peak(client: Client) -> dict[str, Any]:
    """Events per second of the busiest coalescer run (its first to its last event)."""
    best = 0.0
    for workflow_id in await coalescer_ids(client):
        history = await client.get_workflow_handle(workflow_id).fetch_history()
        events = history.events
        if len(events) > 1:
            span = events[-1].event_time.ToDatetime() - events[0].event_time.ToDatetime()
            best = max(best, len(events) / max(span.total_seconds(), 0.001))
    return {"coalescer_events_per_s": round(best, 1)}


async def lone_probes(url: str, fake: FakeResendProcess, probes: int) -> dict[str, Any]:
    """Lone invites at idle: accept (request sent) -> the provider received it."""
    await asyncio.sleep(3)
    seconds: list[float] = []
    async with httpx.AsyncClient(base_url=url, headers=HEADERS, timeout=30) as http:
        for n in range(probes):
            sent = time.time()
            response = await http.post("/v1/invites", json=invite("lone", n))
            assert response.status_code == 202, response.text
            address = f"lone-{n}@bench.example"

            async def arrived(address: str = address) -> float | None:
                for d in await fake.client.deliveries():
                    if d.to[0] == address:
                        return d.received_at_wall
                return None

            received: float = await eventually(arrived, timeout=30, interval=0.02)
            seconds.append(received - sent)
            await asyncio.sleep(1.5)
    ordered = sorted(seconds)
    return {
        "lone_p50_s": round(statistics.median(ordered), 3),
        "lone_p99_s": round(ordered[min(len(ordered) - 1, round(0.99 * len(ordered)))], 3),
    }


async def seeds(fake: FakeResendProcess, log_dir: Path, count: int) -> dict[str, dict[str, Any]]:
    """The seeds' designs against the same limited provider: their 429s are lost emails."""
    results: dict[str, dict[str, Any]] = {}
    for baseline in BASELINES:
        if baseline.name not in SEEDS:
            continue
        await fake.client.reset()
        proc, url = await start_uvicorn(
            baseline.name, baseline.module, log_dir, baseline_env(fake.url)
        )
        first, _ = await burst(url, baseline.name, count)
        results[baseline.name] = await provider_figures(fake, baseline.name, count, first, 15)
        proc.kill9()
    return results


def table(results: dict[str, dict[str, Any]]) -> list[str]:
    columns = [
        "emails", "delivered", "duplicates", "seconds_to_last", "provider_requests", "http_429",
        "events_per_email", "workflow_tasks_per_email", "lone_p50_s", "lone_p99_s",
        "coalescer_events_per_s",
    ]  # fmt: skip
    lines = ["| system | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for name, figures in results.items():
        cells = [str(figures.get(c, "")) for c in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


async def server_floor(
    client: Client, server: DevServer, log_dir: Path, count: int
) -> dict[str, Any]:
    """`count` one-activity workflows executed at `IN_FLIGHT`: what this server completes."""
    worker = await start_minimal_worker(client, server, log_dir)
    args = ["--count", str(count), "--concurrency", str(IN_FLIGHT)]
    probe = start_probe("throughput", server, log_dir, args)
    try:
        result = json.loads(await probe.read_line(timeout=600))
    finally:
        await probe.stop()
        await worker.stop()
    figures = {"emails": count, "seconds_to_last": round(result["seconds"], 1)}
    print("server floor", figures, flush=True)
    return figures


async def measure(args: argparse.Namespace, log_dir: Path) -> list[str]:
    fake = await FakeResendProcess.start(log_dir, latency=LATENCY, rate_limit=RATE)
    STARTED.append(fake.proc)
    server = await start_dev_server(log_dir, log_dir / "temporal.db", [])
    env = our_env(server, fake.url, RATE, log_dir / "outbox", new_codec_key("coalesce"))
    if args.worker_cache:
        env["WORKER_MAX_CACHED_WORKFLOWS"] = str(args.worker_cache)
    client = await server.client()
    plan = [
        ("coalesced", args.shards or SHARDS, args.invites, 0),
        ("single (1.0)", 0, args.single, 0),
        ("batch endpoint", 0, args.invites, 100),
    ]
    if args.big:
        plan.append(("coalesced 10k", args.shards or SHARDS, args.big, 0))
    if args.only_coalesced:
        plan = [step for step in plan if step[1]]
    try:
        results = {FLOOR: await server_floor(client, server, log_dir, args.invites)}
        results |= await ours(client, fake, log_dir, env, plan, args.workers, args.big_wait)
        if not args.only_coalesced:
            results |= await seeds(fake, log_dir, args.seed_invites)
    finally:
        await fake.client.aclose()
    return [
        f"Fake Resend limited to {RATE:g} requests/s (answers in {LATENCY:g} s); single "
        f"`POST /v1/invites` at {IN_FLIGHT} in flight; coalescing with "
        f"{args.shards or SHARDS} shards.\n",
        *table(results),
    ]


def arguments() -> argparse.ArgumentParser:
    """This benchmark's options (`bench.run` takes their defaults)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--invites", type=int, default=1000)
    parser.add_argument("--single", type=int, default=100, help="single sends, 1.0's way")
    parser.add_argument("--seed-invites", type=int, default=200)
    parser.add_argument("--big", type=int, default=0)
    parser.add_argument(
        "--big-wait",
        type=float,
        default=0,
        help="seconds to wait for --big's deliveries (default: 60 + 1 s per 50 invites)",
    )
    parser.add_argument("--log-dir", default=None)
    parser.add_argument("--only-coalesced", action="store_true", help="our coalesced runs only")
    parser.add_argument("--shards", type=int, default=0, help=f"coalescers (default {SHARDS})")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument(
        "--worker-cache", type=int, default=0, help="WORKER_MAX_CACHED_WORKFLOWS (default: ours)"
    )
    return parser


async def main() -> None:
    parser = arguments()
    args = parser.parse_args()
    log_dir = Path(args.log_dir or tempfile.mkdtemp(prefix="coalesce-bench-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    try:
        lines = await measure(args, log_dir)
    finally:
        await stop_started()
    print("\n".join(lines))
    print(f"logs: {log_dir}")


if __name__ == "__main__":
    asyncio.run(main())
