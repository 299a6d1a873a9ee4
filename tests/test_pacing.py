"""Pacing from the provider's answers: `ratelimit-*` and `retry-after` move the Pacer; the
configured rate is the start and the ceiling."""

from __future__ import annotations

import asyncio
import time

import httpx

from activities.transports.pacer import Pacer
from activities.transports.resend import ResendTransport
from activities.types import EmailMessage
from testkit.fake_resend import FakeResendServer
from testkit.keys import FAKE_KEY

MESSAGE = EmailMessage(
    sender="Acme <team@acme.test>", to=["ann@example.com"], subject="Hi", text="x"
)


def test_limit_header_lowers_the_rate_but_never_raises_it() -> None:
    pacer = Pacer(5.0)
    pacer.observe({"ratelimit-limit": "2", "ratelimit-remaining": "1", "ratelimit-reset": "1"})
    assert pacer.rate == 2.0
    pacer.observe({"ratelimit-limit": "10"})
    assert pacer.rate == 5.0  # the configured rate is the ceiling
    pacer.observe({"ratelimit-limit": "nonsense", "retry-after": "-3"})
    assert pacer.rate == 5.0 and pacer.ready_in() == 0.0


def test_remaining_zero_holds_the_next_call_and_retry_after_is_the_emails_own() -> None:
    pacer = Pacer(100.0)
    pacer.observe({"ratelimit-remaining": "0", "ratelimit-reset": "2"})
    assert 1.8 < pacer.ready_in() <= 2.0
    fresh = Pacer(100.0)
    fresh.observe({"retry-after": "3"})
    assert fresh.ready_in() == 0.0


async def paced_sends(
    fake_resend: FakeResendServer, account_rate: float, configured: float, count: int
) -> tuple[Pacer, float]:
    """`count` sends at once through a Pacer at `configured`, to an account of `account_rate`."""
    fake_resend.fake.configure(rate_limit_per_second=account_rate)
    pacer = Pacer(configured)
    async with httpx.AsyncClient(base_url=fake_resend.url) as http:
        transport = ResendTransport(http, FAKE_KEY, pacer)
        started = time.monotonic()
        await asyncio.gather(*(transport.send(MESSAGE, f"key-{n}") for n in range(count)))
    assert fake_resend.fake.requests_by_status == {200: count}
    return pacer, time.monotonic() - started


async def test_a_configured_rate_above_the_account_s_meets_no_429_storm(
    fake_resend: FakeResendServer,
) -> None:
    """Configured 10/s, the account allows 2/s: the first answer brings the pace down to 2."""
    pacer, elapsed = await paced_sends(fake_resend, 2.0, 10.0, 6)
    assert pacer.rate == 2.0
    # The bucket holds 2; the other 4 come at 2/s.
    assert elapsed >= 1.4, elapsed


async def test_an_account_allowed_more_gets_the_configured_rate(
    fake_resend: FakeResendServer,
) -> None:
    pacer, elapsed = await paced_sends(fake_resend, 5.0, 5.0, 11)
    assert pacer.rate == 5.0
    assert elapsed < 3.0, elapsed  # 10 gaps of 0.2 s, not 2/s
