"""The fake's state: its settings, scripted faults, the emails it sent and what it was asked.

Every method is thread-safe: a test calls them from its own thread while the server answers
requests on its event loop in another one.
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, fields, replace
from email.utils import parseaddr
from typing import Any, TypeVar

from testkit.fake_resend.errors import ApiError, RateLimited
from testkit.fake_resend.faults import FakeConfig, Fault, TokenBucket
from testkit.fake_resend.validation import as_list
from testkit.polling import eventually

T = TypeVar("T")


def _fingerprint(payload: object, idempotency_key: str | None) -> str:
    """What a repeat of a keyed request must match (no key: nothing to match)."""
    if idempotency_key is None:
        return ""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class Delivery:
    """An email the fake accepted: it counts as sent, exactly as Resend would send it."""

    id: str
    idempotency_key: str | None
    payload: dict[str, Any]
    to: list[str]
    received_at: float
    """``time.monotonic()`` when the request arrived (compare attempts' spacing with it)."""
    received_at_wall: float
    """``time.time()`` when the request arrived."""
    batch_index: int | None = None
    """Its index in a batch call (``POST /emails/batch``), whose key it shares."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Delivery:
        return cls(**data)


@dataclass(frozen=True)
class RequestRecord:
    """One answered API request (control endpoints are not recorded)."""

    method: str
    path: str
    status: int
    idempotency_key: str | None
    received_at: float
    received_at_wall: float


@dataclass(frozen=True)
class FakeStats:
    """The fake's counters at one moment."""

    deliveries: int
    requests: int
    """API requests received (answered or not); control endpoints are not counted."""
    by_status: dict[int, int]
    in_flight: int
    max_in_flight: int
    pending_faults: int
    duplicates: int

    def to_json(self) -> dict[str, Any]:
        by_status = {str(status): n for status, n in sorted(self.by_status.items())}
        return {**asdict(self), "by_status": by_status}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FakeStats:
        by_status = {int(status): int(n) for status, n in data["by_status"].items()}
        return cls(**{**data, "by_status": by_status})


@dataclass
class _IdempotencyEntry:
    fingerprint: str
    email_id: str
    in_flight: bool = True
    # A batch call's answer, replayed as it was (its ids and its refusals).
    batch_answer: dict[str, Any] | None = None


class FakeResend:
    """The fake's state: configuration, scripted faults, deliveries and counters.

    `config` is what it starts with and what `reset` restores; `seed` makes its random
    errors reproducible.
    """

    def __init__(self, config: FakeConfig | None = None, *, seed: int = 0) -> None:
        self._initial_config = config or FakeConfig()
        self._seed = seed
        self._lock = threading.Lock()
        self._clear()

    def _clear(self) -> None:
        self._config = self._initial_config
        self._bucket = self._new_bucket(self._config)
        self._random = random.Random(self._seed)
        self._faults: list[Fault] = []
        self._deliveries: list[Delivery] = []
        self._emails: dict[str, Delivery] = {}
        self._idempotency: dict[str, _IdempotencyEntry] = {}
        self._requests_total = 0
        self._by_status: Counter[int] = Counter()
        self._request_log: list[RequestRecord] = []
        self._in_flight = 0
        self._max_in_flight = 0

    def _locked(self, read: Callable[[], T]) -> T:
        """`read`'s answer, taken under the lock (the server's thread changes the state)."""
        with self._lock:
            return read()

    @staticmethod
    def _new_bucket(config: FakeConfig) -> TokenBucket | None:
        rate = config.rate_limit_per_second
        return None if rate is None else TokenBucket(float(rate), time.monotonic())

    # -- configuration and faults --------------------------------------------------------

    @property
    def config(self) -> FakeConfig:
        return self._locked(lambda: self._config)

    def configure(self, **changes: Any) -> FakeConfig:
        """Change any of ``FakeConfig``'s fields now, e.g. ``configure(latency=2.0)``."""
        unknown = set(changes) - {f.name for f in fields(FakeConfig)}
        if unknown:
            raise ValueError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        with self._lock:
            config = replace(self._config, **changes)
            if config.rate_limit_per_second != self._config.rate_limit_per_second:
                self._bucket = self._new_bucket(config)
            self._config = config
            return config

    def enqueue_faults(self, faults: Iterable[Fault]) -> None:
        """Queue faults; each authenticated POST /emails consumes the next one, in order."""
        with self._lock:
            self._faults.extend(faults)

    @property
    def pending_faults(self) -> int:
        return self._locked(lambda: len(self._faults))

    def reset(self) -> None:
        """Forget deliveries, counters, idempotency keys and faults; restore the initial config."""
        with self._lock:
            in_flight = self._in_flight  # requests still running will be answered later
            self._clear()
            self._in_flight = self._max_in_flight = in_flight

    # -- what happened -------------------------------------------------------------------

    @property
    def deliveries(self) -> list[Delivery]:
        return self._locked(lambda: list(self._deliveries))

    @property
    def delivered_count(self) -> int:
        return self._locked(lambda: len(self._deliveries))

    def deliveries_for(self, to_address: str) -> list[Delivery]:
        """Deliveries whose ``to`` holds this address (``Name <addr>`` forms match too)."""
        wanted = parseaddr(to_address)[1].lower()
        return [
            delivery
            for delivery in self.deliveries
            if any(parseaddr(to)[1].lower() == wanted for to in delivery.to)
        ]

    def duplicates(self) -> list[Delivery]:
        """Deliveries that repeat an earlier one: same idempotency key (and index in its
        batch), or, when sent without a key, the same ``(to, subject, html, text)`` as an
        earlier delivery."""
        seen_keys: set[tuple[str, int | None]] = set()
        seen_contents: set[tuple[object, ...]] = set()
        repeated = []
        for delivery in self.deliveries:
            payload = delivery.payload
            content = (
                tuple(delivery.to),
                payload.get("subject"),
                payload.get("html"),
                payload.get("text"),
            )
            key = delivery.idempotency_key
            keyed = (key, delivery.batch_index) if key is not None else None
            if (keyed is not None and keyed in seen_keys) or (
                keyed is None and content in seen_contents
            ):
                repeated.append(delivery)
            if keyed is not None:
                seen_keys.add(keyed)
            seen_contents.add(content)
        return repeated

    @property
    def requests_total(self) -> int:
        """API requests received (answered or not); control endpoints are not counted."""
        return self._locked(lambda: self._requests_total)

    @property
    def requests_by_status(self) -> dict[int, int]:
        return self._locked(lambda: dict(self._by_status))

    @property
    def request_log(self) -> list[RequestRecord]:
        return self._locked(lambda: list(self._request_log))

    @property
    def in_flight(self) -> int:
        """POST /emails requests received and not answered yet."""
        return self._locked(lambda: self._in_flight)

    @property
    def max_in_flight(self) -> int:
        return self._locked(lambda: self._max_in_flight)

    def stats(self) -> FakeStats:
        duplicates = len(self.duplicates())
        with self._lock:
            return FakeStats(
                deliveries=len(self._deliveries),
                requests=self._requests_total,
                by_status=dict(self._by_status),
                in_flight=self._in_flight,
                max_in_flight=self._max_in_flight,
                pending_faults=len(self._faults),
                duplicates=duplicates,
            )

    async def wait_for_deliveries(self, n: int, timeout: float = 5.0) -> list[Delivery]:
        """Wait until at least ``n`` deliveries were recorded; return them all."""
        await eventually(
            lambda: self.delivered_count >= n,
            timeout=timeout,
            interval=0.01,
            what=f"{n} deliveries",
        )
        return self.deliveries

    # -- called by the HTTP app while it answers -------------------------------------------

    def request_received(self, *, send: bool) -> None:
        with self._lock:
            self._requests_total += 1
            if send:
                self._in_flight += 1
                self._max_in_flight = max(self._max_in_flight, self._in_flight)

    def request_answered(
        self,
        method: str,
        path: str,
        status: int,
        received: tuple[float, float],
        *,
        send: bool,
        idempotency_key: str | None = None,
    ) -> None:
        record = RequestRecord(method, path, status, idempotency_key, *received)
        with self._lock:
            self._by_status[status] += 1
            self._request_log.append(record)
            if send:
                self._in_flight -= 1

    def take_rate_limit_token(self) -> dict[str, str]:
        """The rate-limit headers of an answer; raises RateLimited when no token is left."""
        with self._lock:
            if self._bucket is None:
                return {}
            headers, retry_after = self._bucket.take(time.monotonic())
        if retry_after is not None:
            raise RateLimited(headers, retry_after)
        return headers

    def next_fault(self) -> Fault | None:
        return self._locked(lambda: self._faults.pop(0) if self._faults else None)

    def random_error(self) -> ApiError | None:
        with self._lock:
            config = self._config
            if config.error_rate <= 0 or self._random.random() >= config.error_rate:
                return None
        return ApiError(config.error_status)

    def _replayable(
        self, key: str | None, fingerprint: str, *, batch: bool
    ) -> _IdempotencyEntry | None:
        """The earlier request made with `key` whose answer this one gets (None: a new one);
        Resend's 409s when the payload differs or the first is still running. Under the lock."""
        entry = None if key is None else self._idempotency.get(key)
        if entry is None:
            return None
        if entry.fingerprint != fingerprint or (batch and entry.batch_answer is None):
            raise ApiError(409, "invalid_idempotent_request")
        if entry.in_flight:
            raise ApiError(409, "concurrent_idempotent_requests")
        return entry

    def _record(
        self, item: dict[str, Any], key: str | None, at: tuple[float, float], index: int | None
    ) -> Delivery:
        """An accepted email: it counts as sent from now on. Under the lock."""
        delivery = Delivery(
            id=str(uuid.uuid4()),
            idempotency_key=key,
            payload=item,
            to=as_list(item["to"]),
            received_at=at[0],
            received_at_wall=at[1],
            batch_index=index,
        )
        self._deliveries.append(delivery)
        self._emails[delivery.id] = delivery
        return delivery

    def accept(
        self,
        payload: dict[str, Any],
        idempotency_key: str | None,
        received: tuple[float, float],
    ) -> tuple[str, bool]:
        """Record a delivery, or replay the one made with the same key.

        Returns the email id, and whether the key is now in flight (the caller must
        then call ``idempotent_request_done`` once it answers).
        """
        fingerprint = _fingerprint(payload, idempotency_key)
        with self._lock:
            entry = self._replayable(idempotency_key, fingerprint, batch=False)
            if entry is not None:
                return entry.email_id, False
            delivery = self._record(payload, idempotency_key, received, None)
            if idempotency_key is None:
                return delivery.id, False
            self._idempotency[idempotency_key] = _IdempotencyEntry(fingerprint, delivery.id)
            return delivery.id, True

    def accept_batch(
        self,
        payload: list[Any],
        refused: dict[int, str],
        idempotency_key: str | None,
        received: tuple[float, float],
    ) -> tuple[dict[str, Any], bool]:
        """Record the emails of a batch call but the ``refused`` ones (index -> reason), or
        replay the answer made with the same key and payload:
        ``{"data": [{"id"}...], "errors": [{"index", "message"}...]}``.

        Returns the answer, and whether the key is now in flight (as ``accept``).
        """
        fingerprint = _fingerprint(payload, idempotency_key)
        with self._lock:
            entry = self._replayable(idempotency_key, fingerprint, batch=True)
            if entry is not None and entry.batch_answer is not None:
                return entry.batch_answer, False
            data: list[dict[str, str]] = []
            errors: list[dict[str, Any]] = []
            for index, item in enumerate(payload):
                if index in refused:
                    errors.append({"index": index, "message": refused[index]})
                    continue
                delivery = self._record(item, idempotency_key, received, index)
                data.append({"id": delivery.id})
            answer: dict[str, Any] = {"data": data}
            if errors:
                answer["errors"] = errors
            if idempotency_key is None:
                return answer, False
            self._idempotency[idempotency_key] = _IdempotencyEntry(
                fingerprint, "", batch_answer=answer
            )
            return answer, True

    def idempotent_request_done(self, idempotency_key: str) -> None:
        with self._lock:
            entry = self._idempotency.get(idempotency_key)
            if entry is not None:
                entry.in_flight = False

    def email(self, email_id: str) -> Delivery | None:
        return self._locked(lambda: self._emails.get(email_id))
