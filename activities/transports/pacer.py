"""Spacing of one process's provider calls (the server-side queue limit hands out bursts)."""

from __future__ import annotations

import asyncio
import time


class Pacer:
    """Spaces this process's provider calls at least `1 / rate` seconds apart.

    The task queue's server-side limit holds the fleet to the rate on average, but hands
    tasks out in bursts; a provider that counts per second (Resend) answers a burst with
    429s. Pacing the burst out keeps every call under the provider's limit.

    The gap is measured between the moments calls are let go, after each has woken up: a
    busy event loop that wakes a call late delays the next one too, instead of letting
    the two go out together (reserved slots alone would bunch them).
    """

    def __init__(self, rate_per_second: float) -> None:
        self._interval = 1.0 / rate_per_second
        self._last: float | None = None
        self._lock = asyncio.Lock()  # FIFO: calls go in the order they asked

    async def wait(self) -> None:
        async with self._lock:
            if self._last is not None:
                delay = self._last + self._interval - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            # Nothing awaits between this and the caller's next step (the lock's release
            # does not yield): the caller goes now.
            self._last = time.monotonic()
