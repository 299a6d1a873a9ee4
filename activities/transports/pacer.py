"""Spacing of one process's provider calls (the server-side queue limit hands out bursts)."""

from __future__ import annotations

import asyncio
import time


class Pacer:
    """Spaces this process's provider calls at least `1 / rate` seconds apart.

    The task queue's server-side limit holds the fleet to the rate on average, but hands
    tasks out in bursts; a provider that counts per second (Resend) answers a burst with
    429s. Pacing the burst out keeps every call under the provider's limit.
    """

    def __init__(self, rate_per_second: float) -> None:
        self._interval = 1.0 / rate_per_second
        self._next = 0.0

    async def wait(self) -> None:
        now = time.monotonic()
        # Reserve the slot before sleeping: no await between the read and the write.
        slot = max(now, self._next)
        self._next = slot + self._interval
        if slot > now:
            await asyncio.sleep(slot - now)
