"""Worker memory per open invite, and what the sticky cache bounds it to.

`python -m bench.invite_memory [--invites 1000] [--cache 1000,100]`: for each cache size
(`WORKER_MAX_CACHED_WORKFLOWS`), a fresh dev server, fake Resend, API and worker; N invites
created through the API, each sent and then left open (waiting to be accepted, as invites
do for days); the worker's RSS measured before and after. Prints one JSON line per cache
size: RSS before, after, and the growth per invite.

An open invite costs memory only while its workflow is in the worker's sticky cache; past
the cache size the worker evicts the least recently used, which replays from history when
next needed (an accept, a reminder timer). So the worker's memory is bounded by
`WORKER_MAX_CACHED_WORKFLOWS`, never by the number of open invites.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import tempfile
from pathlib import Path

import httpx
from temporalio.client import Client

from bench.stack import (
    STARTED,
    our_env,
    start_dev_server,
    start_our_api,
    start_our_worker,
    stop_all,
)
from infra.codec import new_codec_key
from testkit.fake_resend import FakeResendProcess
from testkit.keys import API_KEY
from testkit.polling import eventually
from testkit.procs import Proc

log = logging.getLogger("bench.invite_memory")
WARM_UP = 50


async def _create(http: httpx.AsyncClient, first: int, count: int) -> None:
    limit = asyncio.Semaphore(20)

    async def one(n: int) -> None:
        async with limit:
            invite = {"email": f"m{n}@bench.example", "tenant_name": "Acme", "inviter_name": "B"}
            answer = await http.post("/v1/invites", json={**invite, "expires_in_days": 7})
            answer.raise_for_status()

    await asyncio.gather(*(one(n) for n in range(first, first + count)))


async def _settled_rss(worker: Proc, samples: int = 5) -> int:
    """The worker's RSS once it settles (the smallest of a few samples, 1 s apart: a
    measurement over time, not a wait for a condition)."""
    values = []
    for _ in range(samples):
        await asyncio.sleep(1.0)
        values.append(int(worker.ps.memory_info().rss))
    return min(values)


async def measure(invites: int, cache: int, log_dir: Path) -> dict[str, float]:
    server = await start_dev_server(log_dir, log_dir / "temporal.db", [])
    fake = await FakeResendProcess.start(log_dir)
    STARTED.append(fake.proc)
    env = {
        **our_env(server, fake.url, 500.0, log_dir / "outbox", new_codec_key("bench")),
        "WORKER_MAX_CACHED_WORKFLOWS": str(cache),
        "LOG_LEVEL": "WARNING",
    }
    client = await server.client()
    worker = await start_our_worker(client, log_dir, env)
    _, url = await start_our_api(log_dir, env)
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as http:
        # Warm up: every code path loaded, so the growth below is the invites' own.
        await _create(http, 0, WARM_UP)
        await fake.client.wait_for_deliveries(WARM_UP, timeout=120)
        gc.collect()
        before = await _settled_rss(worker)
        await _create(http, WARM_UP, invites)
        await fake.client.wait_for_deliveries(WARM_UP + invites, timeout=900)
        await eventually(
            lambda: _open_invites(client, WARM_UP + invites),
            timeout=120,
            what="every invite open",
        )
        after = await _settled_rss(worker)
    return {
        "invites": invites,
        "max_cached_workflows": cache,
        "rss_before_mb": round(before / 1e6, 1),
        "rss_after_mb": round(after / 1e6, 1),
        "kb_per_open_invite": round((after - before) / invites / 1e3, 1),
    }


async def _open_invites(client: Client, expected: int) -> bool:
    count = await client.count_workflows("ExecutionStatus='Running'")
    return count.count >= expected


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--invites", type=int, default=1000)
    parser.add_argument("--cache", default="1000,100", help="cache sizes, comma-separated")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    for cache in (int(c) for c in args.cache.split(",")):
        with tempfile.TemporaryDirectory(prefix="invite-memory-") as tmp:
            try:
                result = await measure(args.invites, cache, Path(tmp))
            finally:
                await stop_all()
        log.warning("%s", json.dumps(result))


if __name__ == "__main__":
    asyncio.run(main())
