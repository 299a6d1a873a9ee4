"""Spacing of one process's provider calls, paced to what the provider says of its limit."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from datetime import UTC, datetime

from temporalio import activity


def _number(headers: Mapping[str, str], name: str) -> float | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return number if number >= 0 else None


def attempt_deadline(margin: float) -> float | None:
    """When (`time.monotonic()`) this activity attempt's provider call must go at the latest
    to be answered within the attempt's start-to-close timeout, keeping `margin` seconds for
    the request itself; None outside an activity or without that timeout. Counted from the
    attempt's start as the server recorded it (another machine's clock: a skew shifts it)."""
    if not activity.in_activity():
        return None
    info = activity.info()
    if not info.start_to_close_timeout:
        return None
    timeout = info.start_to_close_timeout.total_seconds()
    elapsed = max(0.0, (datetime.now(UTC) - info.started_time).total_seconds())
    # A request allowed longer than the attempt keeps half of the attempt to wait in.
    left = timeout - elapsed - min(margin, timeout / 2)
    return time.monotonic() + left


class Pacer:
    """Spaces this process's provider calls at least `1 / rate` seconds apart.

    The task queue's server-side limit holds the fleet to the rate on average, but hands
    tasks out in bursts; a provider that counts per second (Resend) answers a burst with
    429s. Pacing the burst out keeps every call under the provider's limit.

    The configured rate is the starting point and the ceiling. Every answer's headers
    (`observe`) move the pace: `ratelimit-limit` (requests per window) lowers the rate to
    what the account is allowed; `ratelimit-remaining: 0` holds the next call until
    `ratelimit-reset`. A `retry-after` is the refused email's to honour (its workflow waits
    it before that email's next attempt), not a hold on every call of the process: a run of
    429s would otherwise let one call through per `retry-after` (the chaos 429 scenario
    delivered nothing in 150 s, the 60 s storm made 61 attempts instead of 400). An account
    allowed 5/s with a configured 5 gets 5; one allowed 2 with a configured 5 comes down to
    2 after its first answer instead of meeting a storm of 429s.

    The gap is measured between the moments calls are let go, after each has woken up: a
    busy event loop that wakes a call late delays the next one too, instead of letting
    the two go out together (reserved slots alone would bunch them).
    """

    def __init__(self, rate_per_second: float) -> None:
        self._ceiling = rate_per_second
        self._interval = 1.0 / rate_per_second
        self._last: float | None = None
        self._hold_until = 0.0
        self._lock = asyncio.Lock()  # FIFO: calls go in the order they asked

    @property
    def rate(self) -> float:
        """The rate calls are let go at now (requests per second)."""
        return 1.0 / self._interval

    def observe(self, headers: Mapping[str, str]) -> None:
        """Pace to one provider answer's rate-limit headers (any status)."""
        now = time.monotonic()
        limit = _number(headers, "ratelimit-limit")
        if limit is not None and limit >= 1:
            # Resend's window is one second (ratelimit-policy "N;w=1").
            self._interval = 1.0 / min(self._ceiling, limit)
        remaining = _number(headers, "ratelimit-remaining")
        reset = _number(headers, "ratelimit-reset")
        if remaining is not None and remaining < 1 and reset is not None:
            self._hold_until = max(self._hold_until, now + min(reset, 60.0))

    def ready_in(self) -> float:
        """Seconds until a call could go now (0: at once): lets a caller coalesce meanwhile."""
        now = time.monotonic()
        due = self._hold_until
        if self._last is not None:
            due = max(due, self._last + self._interval)
        return max(0.0, due - now)

    async def wait(self, deadline: float | None = None) -> None:
        """Until this call's turn. With a `deadline` (`time.monotonic()`), a turn that has
        not come by then is given up (`TurnTooLate`): the call is not made, and the calls
        behind it move up (its attempt would have timed out in the server meanwhile, and a
        call made after that only spends the provider's rate on an answer nobody reads)."""
        try:
            async with asyncio.timeout_at(deadline), self._lock:
                while (delay := self.ready_in()) > 0:
                    await asyncio.sleep(delay)
                # Nothing awaits between this and the caller's next step (the lock's release
                # does not yield): the caller goes now.
                self._last = time.monotonic()
        except TimeoutError:
            raise TurnTooLate from None


class TurnTooLate(Exception):
    """A call's turn at the provider's rate would come after its deadline: not made."""
