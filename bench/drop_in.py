"""Before/after of the Resend drop-in (docs/resend-drop-in.md), measured on this machine.

    python -m bench.drop_in                 # 10 calls each, provider latency 2 s
    python -m bench.drop_in --calls 20 --latency 5

The app's code is seed 000's: `send_invite_email` calls Resend's blocking SDK and its
request waits for the answer. *Before*, the SDK talks to a slow (fake) Resend; *after*, the
same function, unchanged, talks to durable-mail (`resend.api_url` is the only change), which
answers once the send is durably recorded and delivers it through the same slow provider.
Then the provider fails once: before, the call raises into the request; after, it answers
and the worker retries. Prints a markdown table; every process is stopped by PID at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from pathlib import Path

import resend
import resend.exceptions

from bench.stack import (
    STARTED,
    our_env,
    print_measured,
    start_dev_server,
    start_our_api,
    start_our_worker,
)
from infra.codec import new_codec_key
from testkit.fake_resend import FakeResendProcess, Fault
from testkit.keys import API_KEY, FAKE_KEY
from testkit.polling import eventually

EMAIL_FROM = "Acme <invites@acme.example>"


def send_invite_email(to: str, token: str, tenant_name: str, inviter_name: str) -> str:
    """The app's function, as seed 000 has it: a blocking call to Resend's SDK."""
    accept_url = f"https://app.acme.example/invites/accept?token={token}"
    sent = resend.Emails.send(
        {
            "from": EMAIL_FROM,
            "to": [to],
            "subject": f"{inviter_name} invited you to {tenant_name}",
            "html": f'<p>{inviter_name} invited you. <a href="{accept_url}">Accept</a></p>',
            "text": f"{inviter_name} invited you to {tenant_name}: {accept_url}",
        }
    )
    return sent["id"]


def point_sdk_at(url: str, key: str) -> None:
    """The one change an app makes (in production: RESEND_API_URL and RESEND_API_KEY)."""
    resend.api_url = url
    resend.api_key = key


def timed_calls(label: str, calls: int) -> tuple[list[float], list[str], int]:
    """`calls` invites in a row as a request handler makes them: seconds each, ids, errors."""
    seconds: list[float] = []
    ids: list[str] = []
    errors = 0
    for n in range(calls):
        started = time.perf_counter()
        try:
            ids.append(send_invite_email(f"{label}-{n}@example.com", f"t{n}", "Acme", "Bob"))
        except resend.exceptions.ResendError:
            errors += 1
        seconds.append(time.perf_counter() - started)
    return seconds, ids, errors


def row(what: str, seconds: list[float], errors: int) -> str:
    ordered = sorted(seconds)
    p95 = ordered[max(0, round(0.95 * len(ordered)) - 1)]
    return (
        f"| {what} | {len(seconds)} | {statistics.median(seconds) * 1000:.0f} ms "
        f"| {p95 * 1000:.0f} ms | {max(seconds) * 1000:.0f} ms | {errors} |"
    )


async def measure(calls: int, latency: float, log_dir: Path) -> list[str]:
    fake = await FakeResendProcess.start(log_dir, latency=latency)
    STARTED.append(fake.proc)
    server = await start_dev_server(log_dir, log_dir / "temporal.db", [])
    env = our_env(server, fake.url, 50.0, log_dir / "outbox", new_codec_key("drop-in"))
    client = await server.client()
    await start_our_worker(client, log_dir, env)
    _, api_url = await start_our_api(log_dir, env)
    try:
        return await _before_and_after(fake, api_url, calls, latency)
    finally:
        await fake.client.aclose()


async def _before_and_after(
    fake: FakeResendProcess, api_url: str, calls: int, latency: float
) -> list[str]:
    run = timed_calls

    point_sdk_at(fake.url, FAKE_KEY)
    before, _, before_errors = await asyncio.to_thread(run, "before", calls)
    await fake.client.reset()

    point_sdk_at(api_url, API_KEY)
    sent_at = time.perf_counter()
    after, ids, after_errors = await asyncio.to_thread(run, "after", calls)
    deliveries = await fake.client.wait_for_deliveries(calls, timeout=60 + calls * latency)
    all_delivered = time.perf_counter() - sent_at
    assert len(deliveries) == calls and (await fake.client.stats()).duplicates == 0
    assert len(set(ids)) == calls and all(i.startswith("em_") for i in ids)

    # The provider fails once (HTTP 500): who sees it?
    await fake.client.reset()
    point_sdk_at(fake.url, FAKE_KEY)
    await fake.client.enqueue_faults([Fault(status=500)])
    failing_before, _, failing_before_errors = await asyncio.to_thread(run, "down-before", 1)
    await fake.client.enqueue_faults([Fault(status=500)])
    point_sdk_at(api_url, API_KEY)
    failing_after, _, failing_after_errors = await asyncio.to_thread(run, "down-after", 1)
    await eventually(
        lambda: _delivered_to(fake, "down-after-0@example.com"),
        timeout=30,
        what="the failed send retried and delivered",
    )
    return [
        f"Provider latency {latency:g} s (fake Resend), calls made one after another as a "
        "request handler makes them.\n",
        "| `send_invite_email` against | calls | p50 | p95 | max | errors raised |",
        "|---|---|---|---|---|---|",
        row("Resend (before)", before, before_errors),
        row("durable-mail (after)", after, after_errors),
        row("Resend failing once, HTTP 500 (before)", failing_before, failing_before_errors),
        row("durable-mail, provider failing once (after)", failing_after, failing_after_errors),
        "",
        f"After: all {calls} emails had reached the provider {all_delivered:.1f} s after the "
        "first call (the worker makes the slow provider calls, in parallel), exactly once each "
        "(no duplicates at the provider); the one that met the failure was retried by the "
        "worker and delivered.",
    ]


async def _delivered_to(fake: FakeResendProcess, address: str) -> bool:
    return any(address in d.to for d in await fake.client.deliveries())


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--latency", type=float, default=2.0)
    args = parser.parse_args()
    await print_measured(lambda tmp: measure(args.calls, args.latency, tmp), "drop-in-")


if __name__ == "__main__":
    asyncio.run(main())
