"""Rate limits of the API's gate, in this process: token buckets, and the budget of failed
authentications (per client address and per key prefix) that makes guessing keys slow."""

from __future__ import annotations

import time


class TokenBucket:
    """Per-key token buckets, in this process only (N API processes allow N times the rate).

    At most `max_keys` buckets are kept (the least recently touched go first), so keys an
    attacker picks (client addresses, guessed key prefixes) cannot grow memory unbounded.
    """

    def __init__(self, max_keys: int = 100_000) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}
        self._max_keys = max_keys

    def wait(self, key: str, rate: float, burst: int) -> float:
        """What `take` would answer, without taking: 0 if a token is there now."""
        now = time.monotonic()
        tokens, last = self._buckets.get(key, (float(burst), now))
        tokens = min(float(burst), tokens + (now - last) * rate)
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / rate

    def full(self, key: str, rate: float, burst: int) -> bool:
        """Whether `key`'s bucket has refilled (nothing taken within `burst / rate` s)."""
        if key not in self._buckets:
            return True
        tokens, last = self._buckets[key]
        return tokens + (time.monotonic() - last) * rate >= burst

    def take(self, key: str, rate: float, burst: int) -> float:
        """0 if a request may pass now, else the seconds until the next token."""
        now = time.monotonic()
        tokens, last = self._buckets.pop(key, (float(burst), now))
        tokens = min(float(burst), tokens + (now - last) * rate)
        if len(self._buckets) >= self._max_keys:
            del self._buckets[next(iter(self._buckets))]
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1.0 - tokens) / rate


# Failed authentications: per client address, and per key prefix (a guess's first
# characters, as keys of one holder share them). A client past its own budget is refused
# before its key is even looked at; past a prefix's budget, only clients that already
# failed lately are (so one attacker, or many, cannot lock a real key out: a client that has not
# failed is always heard, and a valid key from it always works).
AUTH_FAILURES_PER_CLIENT = (1.0, 20)  # per second, burst
AUTH_FAILURES_PER_PREFIX = (5.0, 100)
KEY_PREFIX_CHARS = 8


class FailedAuthentications:
    """Counts failed authentications and says who must wait before trying again."""

    def __init__(self) -> None:
        self.by_client = TokenBucket()
        self.by_prefix = TokenBucket()

    def wait(self, client: str, prefix: str) -> float:
        """Seconds `client` must wait before presenting a key starting with `prefix`."""
        wait = self.by_client.wait(client, *AUTH_FAILURES_PER_CLIENT)
        if not self.by_client.full(client, *AUTH_FAILURES_PER_CLIENT):  # it failed lately
            wait = max(wait, self.by_prefix.wait(prefix, *AUTH_FAILURES_PER_PREFIX))
        return wait

    def failed(self, client: str, prefix: str) -> None:
        self.by_client.take(client, *AUTH_FAILURES_PER_CLIENT)
        self.by_prefix.take(prefix, *AUTH_FAILURES_PER_PREFIX)
