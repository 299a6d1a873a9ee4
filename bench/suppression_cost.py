"""What the suppression check costs, measured on this machine (issue 20).

    python -m bench.suppression_cost       # 300 sends per phase, 2,000 addresses listed

The check runs in the send's workflow (one local activity before the first attempt), not in
the API: the accept path does the same work whether the tenant's list is empty or full.
Phases, on one stack (dev server, worker, API under uvicorn, fake Resend), after a
warm-up: `POST /emails` with an empty list (twice); then the list filled with `LISTED`
addresses; `POST /emails` again (twice, to addresses not on it); then sends to listed
addresses, which must end `suppressed` with no provider request. Per phase: accepts/s and
latency at a fixed concurrency, and the time until every accepted email reached the
provider. Prints a markdown table; every process is stopped by PID at the end.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx

from bench import stack
from bench.measure import percentile
from bench.stack import print_measured
from infra.codec import new_codec_key
from testkit.fake_resend import FakeResendProcess
from testkit.keys import ACME_KEY
from testkit.polling import eventually

TENANT, DOMAIN = "acme", "bench.example"
SENDER = f"Acme <invites@{DOMAIN}>"
CONCURRENCY = 20
SENDS = 300
LISTED = 2000  # the most a list holds (activities.suppressions.MAX_SUPPRESSIONS)


async def post_all(
    http: httpx.AsyncClient, path: str, bodies: list[dict[str, object]], at_once: int = CONCURRENCY
) -> list[float]:
    """POST every body, `at_once` at a time; each request's seconds (all must succeed)."""
    gate = asyncio.Semaphore(at_once)
    seconds: list[float] = []

    async def one(body: dict[str, object]) -> None:
        async with gate:
            started = time.perf_counter()
            response = await http.post(path, json=body)
            seconds.append(time.perf_counter() - started)
            assert response.status_code < 300, response.text

    await asyncio.gather(*(one(b) for b in bodies))
    return seconds


def email(to: str) -> dict[str, object]:
    return {"from": SENDER, "to": [to], "subject": "Bench", "text": "bench"}


async def accept_phase(
    http: httpx.AsyncClient, fake: FakeResendProcess, label: str, sends: int
) -> str:
    """`sends` emails to fresh addresses: accept figures and time to the provider."""
    await fake.client.reset()
    started = time.perf_counter()
    tag = "".join(c for c in label if c.isalnum())
    bodies = [email(f"{tag}-{n}@example.com") for n in range(sends)]
    seconds = await post_all(http, "/emails", bodies)
    wall = time.perf_counter() - started
    await fake.client.wait_for_deliveries(sends, timeout=120)
    delivered = time.perf_counter() - started
    p50, p99 = (percentile(seconds, q) or 0.0 for q in (50, 99))
    return (
        f"| {label} | {sends} | {sends / wall:.0f}/s | {p50 * 1000:.0f} ms "
        f"| {p99 * 1000:.0f} ms | {delivered:.1f} s |"
    )


async def measure(sends: int, listed: int, log_dir: Path) -> list[str]:
    fake = await FakeResendProcess.start(log_dir, latency=0.05)
    stack.STARTED.append(fake.proc)
    server = await stack.start_dev_server(log_dir, log_dir / "temporal.db", [])
    env = stack.our_env(server, fake.url, 500.0, log_dir / "outbox", new_codec_key("suppress"))
    # Lists are per tenant: the sends are one tenant's.
    env["TENANTS"] = json.dumps({TENANT: {"api_keys": [ACME_KEY], "sender_domains": [DOMAIN]}})
    client = await server.client()
    await stack.start_our_worker(client, log_dir, env)
    _, api_url = await stack.start_our_api(log_dir, env)
    headers = {"Authorization": f"Bearer {ACME_KEY}"}
    async with httpx.AsyncClient(base_url=api_url, headers=headers, timeout=60) as http:
        try:
            await accept_phase(http, fake, "warm-up", sends // 3)  # not reported
            rows = [await accept_phase(http, fake, f"empty list, run {n}", sends) for n in (1, 2)]
            started = time.perf_counter()
            gone = [f"gone-{n}@example.com" for n in range(listed)]
            # One list is one workflow: Temporal takes 10 updates in flight per workflow.
            await post_all(http, "/suppressions", [{"email": a} for a in gone], at_once=8)
            filled = time.perf_counter() - started
            for n in (1, 2):
                rows.append(await accept_phase(http, fake, f"{listed} listed, run {n}", sends))
            held = await _held_back(http, fake, gone[:50])
        finally:
            await fake.client.aclose()
    return [
        f"`POST /emails` at {CONCURRENCY} in flight, one tenant's key, fake Resend answering in "
        "50 ms; `to provider`: from the first request until every email reached the provider.\n",
        "| tenant's suppression list | sends | accepted | p50 | p99 | to provider |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
        f"Filling the list: {listed} `POST /suppressions` in {filled:.1f} s "
        f"({listed / filled:.0f}/s). {held}",
    ]


async def _held_back(http: httpx.AsyncClient, fake: FakeResendProcess, listed: list[str]) -> str:
    """Sends to listed addresses: each must end `suppressed`, none reach the provider."""
    await fake.client.reset()
    started = time.perf_counter()
    ids = []
    for address in listed:
        ids.append((await http.post("/emails", json=email(address))).json()["id"])

    async def all_suppressed() -> bool:
        for email_id in ids:
            got = (await http.get(f"/emails/{email_id}")).json()
            if got["last_event"] != "suppressed":
                return False
        return True

    await eventually(all_suppressed, timeout=60, what="sends to listed addresses suppressed")
    elapsed = time.perf_counter() - started
    reached = len(await fake.client.deliveries())
    assert reached == 0, f"{reached} suppressed emails reached the provider"
    return (
        f"{len(ids)} sends to listed addresses: all `suppressed` within {elapsed:.1f} s of the "
        f"first request, {reached} provider requests."
    )


if __name__ == "__main__":
    asyncio.run(print_measured(lambda tmp: measure(SENDS, LISTED, tmp), "suppress-"))
