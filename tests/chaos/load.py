"""The chaos load client: a paced burst of invites, retried like a real client would.

Every invite has a unique address `c{n}@chaos.example` and its own Idempotency-Key, so
retrying a 503 or a lost answer with the same key is safe: the API starts at most one
workflow per key. Every answer is recorded with when it was sent and received.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx

from testkit.keys import API_KEY

HEADERS = {"Authorization": f"Bearer {API_KEY}"}
REQUEST_TIMEOUT = 10.0
RETRY_DELAYS = (0.2, 0.3, 0.5, 0.8, 1.0)

log = logging.getLogger("tests.chaos.load")


def invite_body(address: str) -> dict[str, str]:
    return {"email": address, "tenant_name": "Chaos Inc", "inviter_name": "Load Client"}


@dataclass(frozen=True)
class Answer:
    api_url: str
    address: str
    status: int | None  # None: no HTTP answer (timeout, refused, reset)
    sent_at: float
    answered_at: float


@dataclass
class LoadResult:
    """What the client saw: the accepted invites and every answer."""

    accepted: dict[str, str] = field(default_factory=dict)  # address -> invite_id
    gave_up: set[str] = field(default_factory=set)
    answers: list[Answer] = field(default_factory=list)
    replayed: int = 0

    @property
    def status_counts(self) -> Counter[int | None]:
        return Counter(a.status for a in self.answers)

    @property
    def unavailable(self) -> int:
        return self.status_counts[503]

    @property
    def no_answer(self) -> int:
        return self.status_counts[None]

    @property
    def other_errors(self) -> int:
        return sum(n for s, n in self.status_counts.items() if s not in (202, 503, None))

    def ambiguous(self, address: str) -> bool:
        """True if some request for `address` got no answer: it may have been accepted."""
        return any(a.address == address and a.status is None for a in self.answers)


class LoadClient:
    """Sends invites round-robin over the API URLs and records everything it sees."""

    def __init__(self, api_urls: list[str], run: str, *, give_up_after: float = 90.0) -> None:
        self.api_urls = api_urls
        self.run = run
        self.give_up_after = give_up_after
        self.result = LoadResult()
        self._http = httpx.AsyncClient(
            timeout=REQUEST_TIMEOUT,
            headers=HEADERS,
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=50),
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def post_invite(self, api_url: str, address: str, key: str) -> int | None:
        """One POST; returns the status, or None when no HTTP answer came back."""
        sent_at = time.monotonic()
        status: int | None = None
        try:
            response = await self._http.post(
                f"{api_url}/v1/invites",
                json=invite_body(address),
                headers={"Idempotency-Key": key},
            )
            status = response.status_code
            if status == 202:
                self.result.accepted[address] = response.json()["invite_id"]
                if response.headers.get("Idempotent-Replayed") == "true":
                    self.result.replayed += 1
            elif status != 503:
                log.warning("POST %s for %s: %d %s", api_url, address, status, response.text)
        except httpx.TransportError as exc:
            log.info("POST %s for %s: no answer (%s)", api_url, address, type(exc).__name__)
        self.result.answers.append(Answer(api_url, address, status, sent_at, time.monotonic()))
        return status

    async def invite(self, n: int) -> None:
        """Send invite `n` until it is accepted, rejected for good, or the client gives up."""
        address = f"c{n}@chaos.example"
        key = f"{self.run}-{n}"
        deadline = time.monotonic() + self.give_up_after
        delays = itertools.chain(RETRY_DELAYS, itertools.repeat(RETRY_DELAYS[-1]))
        # Alternate APIs on retries too, as a client behind a load balancer would.
        for attempt in itertools.count():
            api_url = self.api_urls[(n + attempt) % len(self.api_urls)]
            status = await self.post_invite(api_url, address, key)
            if status is not None and status != 503:
                return
            if time.monotonic() >= deadline:
                self.result.gave_up.add(address)
                return
            await asyncio.sleep(next(delays))

    async def burst(self, count: int, *, rate: float, concurrency: int) -> None:
        """Invites 0..count-1, started at `rate` per second, at most `concurrency` at once."""
        gate = asyncio.Semaphore(concurrency)
        started = time.monotonic()

        async def paced(n: int) -> None:
            async with gate:
                await self.invite(n)

        tasks = []
        for n in range(count):
            # Pacing the load (not waiting for a condition): invite n leaves at n / rate.
            await asyncio.sleep(max(0.0, started + n / rate - time.monotonic()))
            tasks.append(asyncio.create_task(paced(n)))
        await asyncio.gather(*tasks)
