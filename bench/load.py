"""aiohttp load generators: a closed loop (N requests at concurrency C) and an open loop
(arrivals paced by a schedule, whatever the server does).

The open loop measures each request's latency from its *scheduled* send time, so a stalled
server cannot slow the arrivals down and hide its own stall (no coordinated omission).
Every invite gets its own recipient, `{tag}-{n}@bench.example`, so the fake provider's
deliveries can be matched back to the request that caused them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from testkit.keys import API_KEY

STATUS_TIMEOUT = 0
STATUS_CONN_ERROR = -1
INVITE_PATH = "/v1/invites"


def invite_email(tag: str, index: int) -> str:
    return f"{tag}-{index}@bench.example"


def invite_body(tag: str, index: int, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "email": invite_email(tag, index),
        "tenant_name": "Acme",
        "inviter_name": "Ann",
        **(extra or {}),
    }


@dataclass(frozen=True)
class Invites:
    """What a load sends: invites to `{tag}-{n}@bench.example` from n = `first_index`, with
    `extra` fields in every body (e.g. `send_at`), each answered within `timeout_s` or not."""

    base_url: str
    tag: str
    timeout_s: float = 10.0
    first_index: int = 0
    extra: dict[str, Any] | None = None

    @property
    def url(self) -> str:
        return self.base_url + INVITE_PATH


@dataclass
class RequestRecord:
    """One request: when it was due and sent, how long until the answer, and the answer."""

    index: int
    email: str
    due: float  # perf_counter seconds when the request was due (open loop: scheduled)
    sent_wall: float  # time.time() when the request left the client
    latency_s: float  # answer time minus `due`
    status: int  # HTTP status, 0 for a client timeout, -1 for a connection error

    @property
    def accepted(self) -> bool:
        return 200 <= self.status < 300


@dataclass
class LoadResult:
    """Everything a load run produced; times are perf_counter seconds unless `_wall`."""

    kind: str
    tag: str
    records: list[RequestRecord] = field(default_factory=list)
    started: float = 0.0
    ended: float = 0.0
    started_wall: float = 0.0
    offered_rate: float | None = None
    concurrency: int | None = None
    max_send_lag_s: float = 0.0

    def start(self) -> None:
        self.started = time.perf_counter()
        self.started_wall = time.time()

    @property
    def duration_s(self) -> float:
        return max(self.ended - self.started, 1e-9)

    @property
    def accepted(self) -> list[RequestRecord]:
        return [r for r in self.records if r.accepted]


def make_session(limit: int, timeout_s: float) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=limit, force_close=False)
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=timeout_s),
        headers={"Authorization": f"Bearer {API_KEY}"},
    )


async def _post(
    session: aiohttp.ClientSession, invites: Invites, n: int, due: float
) -> RequestRecord:
    index = invites.first_index + n
    body = invite_body(invites.tag, index, invites.extra)
    sent_wall = time.time()
    try:
        async with session.post(invites.url, json=body) as response:
            await response.read()
            status = response.status
    except TimeoutError:
        status = STATUS_TIMEOUT
    except aiohttp.ClientError:
        status = STATUS_CONN_ERROR
    return RequestRecord(
        index=index,
        email=invite_email(invites.tag, index),
        due=due,
        sent_wall=sent_wall,
        latency_s=time.perf_counter() - due,
        status=status,
    )


async def closed_loop(
    invites: Invites, *, count: int, concurrency: int, max_seconds: float
) -> LoadResult:
    """`count` invites from `concurrency` clients, each sending its next one when answered.

    Stops issuing after `max_seconds` (a blocked server would otherwise hold the run for
    hours); requests already sent still get up to `invites.timeout_s` to be answered.
    """
    result = LoadResult(kind="closed", tag=invites.tag, concurrency=concurrency)
    next_index = 0
    async with make_session(concurrency, invites.timeout_s) as session:
        result.start()
        stop_issuing = result.started + max_seconds

        async def client() -> None:
            nonlocal next_index
            while next_index < count and time.perf_counter() < stop_issuing:
                index = next_index
                next_index += 1
                due = time.perf_counter()
                record = await _post(session, invites, index, due)
                result.records.append(record)

        await asyncio.gather(*(client() for _ in range(concurrency)))
        result.ended = time.perf_counter()
    return result


async def open_loop(
    invites: Invites,
    *,
    rate: float,
    seconds: float,
    max_in_flight: int = 2000,
    on_tick: Callable[[float], None] | None = None,
) -> LoadResult:
    """Invites arriving every `1/rate` seconds for `seconds`, each timed from its due time.

    `on_tick(elapsed)` is called after each arrival is launched (the crash scenarios use it
    to kill a process mid-run without disturbing the schedule).
    """
    count = max(int(rate * seconds), 1)
    result = LoadResult(kind="open", tag=invites.tag, offered_rate=rate)
    tasks: list[asyncio.Task[RequestRecord]] = []
    async with make_session(max_in_flight, invites.timeout_s) as session:
        result.start()
        for i in range(count):
            due = result.started + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            result.max_send_lag_s = max(result.max_send_lag_s, time.perf_counter() - due)
            post = _post(session, invites, i, due)
            tasks.append(asyncio.create_task(post))
            if on_tick is not None:
                on_tick(time.perf_counter() - result.started)
        result.records = list(await asyncio.gather(*tasks))
        result.ended = time.perf_counter()
    return result


BATCH_PATH = "/v1/invites/batch"


@dataclass
class BatchRecord:
    """One batch request: its invites' indexes, when it left, when it was answered, how."""

    first_index: int
    size: int
    sent_wall: float
    answered_wall: float
    status: int
    body: dict[str, Any] = field(default_factory=dict)

    @property
    def accepted(self) -> bool:
        return 200 <= self.status < 300


async def batch_invites(
    base_url: str,
    tag: str,
    *,
    count: int,
    per_request: int,
    concurrency: int,
    timeout_s: float = 30.0,
    extra: dict[str, Any] | None = None,
) -> list[BatchRecord]:
    """`count` invites to `{tag}-{n}@bench.example` as batch requests of `per_request`, from
    `concurrency` clients (closed loop); one record per request."""
    starts = list(range(0, count, per_request))
    records: list[BatchRecord] = []
    async with make_session(concurrency, timeout_s) as session:

        async def client() -> None:
            while starts:
                first = starts.pop(0)
                size = min(per_request, count - first)
                body = {"invites": [invite_body(tag, first + i, extra) for i in range(size)]}
                sent_wall = time.time()
                answer: dict[str, Any] = {}
                try:
                    async with session.post(base_url + BATCH_PATH, json=body) as response:
                        status = response.status
                        if 200 <= status < 300:
                            answer = await response.json()
                        else:
                            await response.read()
                except TimeoutError:
                    status = STATUS_TIMEOUT
                except aiohttp.ClientError:
                    status = STATUS_CONN_ERROR
                records.append(BatchRecord(first, size, sent_wall, time.time(), status, answer))

        await asyncio.gather(*(client() for _ in range(concurrency)))
    return sorted(records, key=lambda r: r.first_index)
