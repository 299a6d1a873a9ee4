"""`scheduled_at` in words ("in 1 hour", "tomorrow at 9am"), as Resend takes it, driven by
Resend's Python SDK against the real stack of tests/test_resend_compat.py; and the parser
itself (`api.resend_compat.schedule`) at fixed moments."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import resend

from api.resend_compat.schedule import natural_time
from tests.test_resend_compat import (
    Stack,
    call,
    deliveries_of,
    email,
    sdk,  # noqa: F401  (the SDK pointed at this module's stack)
    stack,  # noqa: F401
)

NOW = datetime(2026, 12, 4, 20, 0, tzinfo=UTC)  # a Friday


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        ("in 1 hour", NOW + timedelta(hours=1)),
        ("in 1 min", NOW + timedelta(minutes=1)),
        ("tomorrow at 9am", datetime(2026, 12, 5, 9, 0, tzinfo=UTC)),
        # A zone stated in the words wins over UTC.
        ("tomorrow at 9am PST", datetime(2026, 12, 5, 17, 0, tzinfo=UTC)),
        ("monday 10:00", datetime(2026, 12, 7, 10, 0, tzinfo=UTC)),
        ("in 30 days", NOW + timedelta(days=30)),
    ],
)
def test_words_name_the_moment_in_utc(words: str, expected: datetime) -> None:
    assert natural_time(words, NOW) == expected


@pytest.mark.parametrize("words", ["whenever suits", "2", "", "soon-ish", "x" * 200])
def test_words_that_name_no_moment_are_none(words: str) -> None:
    assert natural_time(words, NOW) is None


async def test_sdk_schedules_in_words_then_cancels_and_nothing_goes_out(sdk: Stack) -> None:  # noqa: F811
    asked = datetime.now(UTC)
    email_id = (await call(resend.Emails.send, email(scheduled_at="in 1 hour")))["id"]
    got: dict[str, Any] = dict(await call(resend.Emails.get, email_id))
    assert got["last_event"] == "scheduled"
    at = datetime.fromisoformat(got["scheduled_at"])
    assert asked + timedelta(minutes=59) < at < datetime.now(UTC) + timedelta(minutes=61)

    canceled = await call(resend.Emails.cancel, email_id)
    assert canceled["id"] == email_id
    assert (await call(resend.Emails.get, email_id))["last_event"] == "canceled"
    assert deliveries_of(sdk.fake, email_id) == []


async def test_sdk_retry_of_a_send_in_words_replays_the_first_answer(sdk: Stack) -> None:  # noqa: F811
    # The same words a moment later name a later time: still the same request.
    params = email(scheduled_at="in 1 hour")
    options: resend.Emails.SendOptions = {"idempotency_key": f"words/{uuid.uuid4().hex}"}
    first = await call(resend.Emails.send, params, options)
    again = await call(resend.Emails.send, params, options)
    assert again["id"] == first["id"]
    await call(resend.Emails.cancel, first["id"])


async def test_sdk_reschedules_in_words(sdk: Stack) -> None:  # noqa: F811
    email_id = (await call(resend.Emails.send, email(scheduled_at="in 2 hours")))["id"]
    await call(resend.Emails.update, {"id": email_id, "scheduled_at": "in 3 hours"})
    got: dict[str, Any] = dict(await call(resend.Emails.get, email_id))
    at = datetime.fromisoformat(got["scheduled_at"])
    assert datetime.now(UTC) + timedelta(minutes=175) < at < datetime.now(UTC) + timedelta(hours=3)
    await call(resend.Emails.cancel, email_id)
