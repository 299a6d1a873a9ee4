"""Chaos: Resend stops listening in the middle of a 300-invite burst, with
`PROVIDERS=resend,smtp` and a real SMTP relay (aiosmtpd, STARTTLS and AUTH).

Every invite must be delivered by exactly one of the two: an invite Resend provably did not
take (connection refused) moves to SMTP; one whose Resend attempt had an unknown outcome
(a request in flight when Resend went away) is never moved, and waits for Resend, which
comes back once SMTP has taken everything it may take. Counted per invite across the fake
Resend's store and the relay's received messages: lost 0, duplicates 0.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from testkit.fake_resend import FakeResendServer
from testkit.polling import eventually
from testkit.smtp_server import SmtpServer, smtp_server

from .load import HEADERS, LoadClient
from .report import ChaosReport, Figures
from .stack import Stack, StackFactory
from .test_chaos import CONCURRENCY, FAILED, INVITES, RATE, SETTLE_TIMEOUT, UNSENT

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(300)]

# Resend stays down at least this long after SMTP took its last invite: long enough for
# every invite that may move to have moved (backoff is at most 2 s in the chaos stack).
QUIET_SECONDS = 6.0
STATUS_SAMPLE = 30


@pytest.fixture
def relay(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SmtpServer]:
    """The relay, and the environment that makes the stack's workers fail over to it."""
    directory = tmp_path / "relay"
    directory.mkdir()
    with smtp_server(directory) as server:
        monkeypatch.setenv("PROVIDERS", "resend,smtp")
        monkeypatch.setenv("SMTP_TIMEOUT_SECONDS", "5")
        for name, value in server.env().items():
            monkeypatch.setenv(name, value)
        yield server


def per_address(fake_server: FakeResendServer, relay: SmtpServer) -> Counter[str]:
    """How many times each address was delivered, by Resend and by SMTP together."""
    by_resend = Counter(a for d in fake_server.fake.deliveries for a in d.to)
    return by_resend + Counter(relay.relay.recipients)


async def resend_down_then_back(stack: Stack, relay: SmtpServer, load: LoadClient) -> Any:
    """Stop the fake Resend mid-burst; restart it on the same port once SMTP is quiet."""
    fake_server = stack.fake_server
    fake = fake_server.fake
    await eventually(lambda: fake.delivered_count >= 80, timeout=60, what="80 deliveries")
    in_flight, delivered_at_stop = fake.in_flight, fake.delivered_count
    stopped_at = time.monotonic()
    await asyncio.to_thread(fake_server.stop)
    await eventually(
        lambda: len(relay.relay.received) >= 20, timeout=60, what="20 sends through SMTP"
    )
    # SMTP quiet: every invite that could move has moved; the rest wait for Resend.
    seen, quiet_since = -1, time.monotonic()
    while time.monotonic() - quiet_since < QUIET_SECONDS or len(load.result.accepted) < INVITES:
        if len(relay.relay.received) != seen:
            seen, quiet_since = len(relay.relay.received), time.monotonic()
        await asyncio.sleep(0.5)  # a sampling interval, not a wait for an event
        if time.monotonic() - stopped_at > 120:
            break
    down_s = time.monotonic() - stopped_at
    by_smtp_while_down = len(relay.relay.received)
    await asyncio.to_thread(fake_server.start)
    return {
        "in_flight_at_stop": in_flight,
        "resend_delivered_before_stop": delivered_at_stop,
        "smtp_delivered_while_down": by_smtp_while_down,
        "resend_down_s": round(down_s, 1),
    }


async def settle(stack: Stack, relay: SmtpServer, accepted: set[str]) -> None:
    """Every accepted invite delivered by one of the two, and no workflow still unsent."""
    client = await stack.client()

    async def done() -> bool:
        if not accepted <= set(per_address(stack.fake_server, relay)):
            return False
        return (await client.count_workflows(UNSENT)).count == 0

    try:
        await eventually(done, timeout=SETTLE_TIMEOUT, what="all accepted invites", interval=0.5)
    except AssertionError as err:
        missing = sorted(accepted - set(per_address(stack.fake_server, relay)))
        tails = "\n".join(f"--- {p.name}\n{p.log_tail(15)}" for p in stack.workers)
        raise AssertionError(
            f"{err}; {len(missing)} undelivered, e.g. {missing[:5]}\n{tails}"
        ) from None
    assert (await client.count_workflows(FAILED)).count == 0


async def statuses_of(stack: Stack, invite_ids: list[str]) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=stack.api_urls[0], headers=HEADERS) as api:
        return [(await api.get(f"/v1/emails/{invite_id}")).json() for invite_id in invite_ids]


async def test_resend_down_mid_burst_every_invite_delivered_by_exactly_one_provider(
    stack_factory: StackFactory, chaos_report: ChaosReport, relay: SmtpServer
) -> None:
    stack = await stack_factory()
    fake = stack.fake_server.fake
    fake.configure(latency=0.05)  # some sends are in flight when Resend stops
    load = LoadClient(stack.api_urls, run=f"failover-{uuid.uuid4().hex[:8]}")
    started = time.monotonic()
    burst = asyncio.create_task(load.burst(INVITES, rate=RATE, concurrency=CONCURRENCY))
    try:
        notes = await resend_down_then_back(stack, relay, load)
        await asyncio.wait_for(asyncio.shield(burst), timeout=120)
    finally:
        if not burst.done():
            burst.cancel()
        await load.aclose()
    accepted = set(load.result.accepted)
    await settle(stack, relay, accepted)

    counts = per_address(stack.fake_server, relay)
    by_smtp = set(relay.relay.recipients)
    notes.update(
        delivered_by_resend=fake.delivered_count,
        delivered_by_smtp=len(relay.relay.received),
        resend_after_return=fake.delivered_count - notes["resend_delivered_before_stop"],
    )
    figures = Figures(
        scenario="resend down mid-burst, failover to smtp",
        invites=INVITES,
        accepted=len(accepted),
        delivered=fake.delivered_count + len(relay.relay.received),
        lost=sum(1 for a in accepted if counts[a] == 0),
        duplicates=sum(n - 1 for n in counts.values() if n > 1) + len(fake.duplicates()),
        unaccepted_delivered=sum(1 for a in counts if a not in accepted),
        api_503=load.result.unavailable,
        api_no_answer=load.result.no_answer,
        api_other_errors=load.result.other_errors,
        replayed_202=load.result.replayed,
        provider_answers={
            **{str(s): n for s, n in sorted(fake.requests_by_status.items())},
            "smtp_250": len(relay.relay.received),
        },
        elapsed_s=round(time.monotonic() - started, 1),
        notes=notes,
    )
    chaos_report.add(figures)

    assert figures.accepted == INVITES and load.result.gave_up == set()
    assert figures.lost == 0 and figures.duplicates == 0
    assert figures.unaccepted_delivered == 0 and figures.delivered == figures.accepted
    assert notes["delivered_by_smtp"] >= 20
    # What the status says of invites SMTP sent: the provider, and why they moved.
    sample = sorted(by_smtp)[:STATUS_SAMPLE]
    statuses = await statuses_of(stack, [load.result.accepted[a] for a in sample])
    moved = Counter((s["provider"], s["failover_from"], s["failover_reason"]) for s in statuses)
    assert set(moved) == {("smtp", "resend", "ProviderUnreachable")}, moved
