"""Pacing from the provider's answers: `ratelimit-*` and `retry-after` move the Pacer; the
configured rate is the start and the ceiling."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from temporalio.testing import ActivityEnvironment

from activities import errors
from activities.transports.base import ProviderFailure
from activities.transports.pacer import Pacer, TurnTooLate
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


async def test_a_turn_that_would_come_after_the_deadline_is_given_up_and_takes_no_slot() -> None:
    pacer = Pacer(2.0)
    await pacer.wait()  # the next turn is 0.5 s away
    with pytest.raises(TurnTooLate):
        await pacer.wait(deadline=time.monotonic() + 0.1)
    started = time.monotonic()
    await pacer.wait()  # its turn, not one after the call that gave up
    assert time.monotonic() - started < 0.5


@pytest.mark.parametrize(("held", "sent"), [(5.0, False), (0.3, True)])
async def test_a_paced_call_goes_only_if_its_attempt_can_still_be_answered_in_time(
    fake_resend: FakeResendServer, held: float, sent: bool
) -> None:
    """Started just now, with 3 s to complete and a request timeout of 1 s: the call must go
    within ~1 s. Held 5 s by the account's `remaining: 0`, it is not made at all (its attempt
    would time out first, the retry paying the provider's rate again); held 0.3 s, it goes."""
    env = ActivityEnvironment()
    env.info = replace(
        env.info, start_to_close_timeout=timedelta(seconds=3), started_time=datetime.now(UTC)
    )
    pacer = Pacer(10.0)
    pacer.observe({"ratelimit-remaining": "0", "ratelimit-reset": str(held)})
    async with httpx.AsyncClient(base_url=fake_resend.url, timeout=1.0) as http:
        transport = ResendTransport(http, FAKE_KEY, pacer)
        started = time.monotonic()
        if sent:
            await env.run(transport.send, MESSAGE, "key-1")
        else:
            with pytest.raises(ProviderFailure) as caught:
                await env.run(transport.send, MESSAGE, "key-1")
            assert caught.value.error_type == errors.TURN_TOO_LATE
            assert time.monotonic() - started < 2.0  # gave up at the deadline, not the turn
    assert fake_resend.fake.requests_total == int(sent)
    # Nothing was sent: retried like any refusal, never moved to another provider for it.
    assert errors.TURN_TOO_LATE in errors.NOT_ACCEPTED
    assert errors.TURN_TOO_LATE not in errors.PERMANENT_ERRORS | errors.PROVIDER_CANNOT_TAKE
