"""What a test can script: the fake's settings (latency, random errors, a rate limit, the key)
and one-off faults, each consumed by the next send."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Final

from testkit.fake_resend.errors import ApiError
from testkit.keys import FAKE_KEY

DEFAULT_API_KEY: Final = FAKE_KEY


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True)
class Fault:
    """One scripted answer, consumed by the next authenticated POST /emails (or /emails/batch).

    ``Fault(status=500)`` answers ``application_error``; ``Fault(status=429, retry_after=2)``
    answers ``rate_limit_exceeded`` with ``retry-after: 2``; ``name`` overrides the error name
    (``daily_quota_exceeded``, ``monthly_quota_exceeded``, ...); ``html=True`` answers a
    load balancer's HTML page instead of JSON. ``Fault(hold=5.0)`` (status 200) accepts and
    records the delivery at once, then keeps the response open for ``hold`` seconds: the
    client may time out, but the email was sent. On an error status ``hold`` only delays it.
    ``Fault(invalid_items=(1,))`` (batch calls only) has the provider find the email at index
    1 invalid: a permissive batch refuses it in its ``errors`` and sends the others, a strict
    one answers 422 for the whole call.
    """

    status: int = 200
    name: str | None = None
    message: str | None = None
    retry_after: int | None = None
    hold: float = 0.0
    html: bool = False
    invalid_items: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        items = self.invalid_items
        if not isinstance(items, list | tuple) or not all(
            isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in items
        ):
            raise ValueError(f"fault invalid_items must be indexes >= 0, got {items!r}")
        # A JSON list (control route) becomes the tuple a frozen fault holds.
        object.__setattr__(self, "invalid_items", tuple(items))
        if not isinstance(self.status, int) or not (
            self.status == 200 or 400 <= self.status <= 599
        ):
            raise ValueError(f"fault status must be 200 or 400..599, got {self.status!r}")
        if not _is_number(self.hold) or not 0 <= self.hold < math.inf:
            raise ValueError(f"fault hold must be a number >= 0, got {self.hold!r}")
        if self.retry_after is not None and (
            not isinstance(self.retry_after, int) or self.retry_after < 0
        ):
            raise ValueError(f"fault retry_after must be an int >= 0, got {self.retry_after!r}")

    def error(self) -> ApiError | None:
        if self.status == 200:
            return None
        return ApiError(
            self.status, self.name, self.message, retry_after=self.retry_after, html=self.html
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# The fake answers a `timeout` fault this long after accepting (see `Fault.hold`); `make dev
# PROVIDER=fake` gives the worker a shorter `RESEND_TIMEOUT_SECONDS`, so the attempt times out.
TIMEOUT_HOLD_SECONDS: Final = 10.0
FAULT_KINDS: Final = ("500", "429", "timeout", "any status 400..599")


def fault_of_kind(kind: str, *, retry_after: int = 2) -> Fault:
    """The fault `make fault KIND=...` queues: `500` (a server error), `429` (rate limited,
    `retry-after: retry_after`), `timeout` (accepted, answered too late: the retry is
    deduplicated by its idempotency key) or any other error status."""
    if kind == "timeout":
        return Fault(hold=TIMEOUT_HOLD_SECONDS)
    try:
        status = int(kind)
    except ValueError:
        raise ValueError(f"unknown fault kind {kind!r}; one of {', '.join(FAULT_KINDS)}") from None
    if status == 200:
        raise ValueError("200 is not a fault")
    return Fault(status=status, retry_after=retry_after if status == 429 else None)


@dataclass(frozen=True)
class FakeConfig:
    """What the fake is set to now; change it with ``FakeResend.configure``."""

    api_key: str = DEFAULT_API_KEY
    latency: float = 0.0
    error_rate: float = 0.0
    error_status: int = 500
    rate_limit_per_second: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.api_key, str) or not self.api_key:
            raise ValueError("api_key must be a non-empty string")
        if not _is_number(self.latency) or not 0 <= self.latency < math.inf:
            raise ValueError(f"latency must be a number >= 0, got {self.latency!r}")
        if not _is_number(self.error_rate) or not 0 <= self.error_rate <= 1:
            raise ValueError(f"error_rate must be between 0 and 1, got {self.error_rate!r}")
        if not isinstance(self.error_status, int) or not 400 <= self.error_status <= 599:
            raise ValueError(f"error_status must be 400..599, got {self.error_status!r}")
        rate = self.rate_limit_per_second
        if rate is not None and (not _is_number(rate) or not 0 < rate < math.inf):
            raise ValueError(f"rate_limit_per_second must be > 0 or None, got {rate!r}")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class TokenBucket:
    """``rate`` requests per second with bursts up to ``max(1, rate)``."""

    def __init__(self, rate: float, now: float) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self.tokens = self.capacity
        self.updated = now

    def take(self, now: float) -> tuple[dict[str, str], int | None]:
        """Return the rate-limit headers, and the seconds to wait if no token was left."""
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        retry_after = None
        if self.tokens >= 1.0:
            self.tokens -= 1.0
        else:
            retry_after = max(1, math.ceil((1.0 - self.tokens) / self.rate))
        headers = {
            "ratelimit-limit": str(int(self.capacity)),
            "ratelimit-remaining": str(int(self.tokens)),
            "ratelimit-reset": str(math.ceil((self.capacity - self.tokens) / self.rate)),
        }
        return headers, retry_after
