"""Launch and read the fake Resend (`tests/fake_resend.py`) that every system sends to."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp

from bench.procs import PYTHON, BenchError, Proc, read_line, spawn

FAKE_API_KEY = "re_test_key"
FAKE_MODULE = os.environ.get("BENCH_FAKE_MODULE", "testkit.fake_resend")


@dataclass
class Delivery:
    """One email the fake accepted (first copy of an idempotency key, or every copy without)."""

    to: str
    received_wall: float
    idempotency_key: str | None


def _wall(value: Any) -> float:
    if isinstance(value, int | float):
        return float(value)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def _recipients(record: dict[str, Any]) -> list[str]:
    to = record.get("to")
    if to is None:
        to = (record.get("payload") or {}).get("to")
    if isinstance(to, str):
        return [to]
    return [str(t) for t in to or []]


class FakeResend:
    """The fake provider process plus an HTTP client for its `/_fake/*` control endpoints."""

    def __init__(self, proc: Proc, url: str) -> None:
        self.proc = proc
        self.url = url
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))

    @classmethod
    async def start(
        cls, log_dir: Path, *, latency: float, rate_limit: float | None = None
    ) -> FakeResend:
        args = [PYTHON, "-m", FAKE_MODULE, "--host", "127.0.0.1", "--port", "0"]
        args += ["--latency", str(latency), "--api-key", FAKE_API_KEY]
        if rate_limit is not None:
            args += ["--rate-limit", str(rate_limit)]
        proc = spawn("fake_resend", args, log_dir=log_dir, stdout_pipe=True)
        line = await read_line(proc, timeout=20)
        try:
            url = str(json.loads(line)["url"])
        except (ValueError, KeyError):
            await proc.stop()
            raise BenchError(f"fake_resend printed {line!r}, expected a JSON url line") from None
        return cls(proc, url)

    async def close(self) -> None:
        await self._session.close()
        await self.proc.stop()

    async def _get(self, path: str) -> Any:
        async with self._session.get(self.url + path) as response:
            response.raise_for_status()
            return await response.json()

    async def _post(self, path: str, body: dict[str, Any] | None = None) -> None:
        async with self._session.post(self.url + path, json=body or {}) as response:
            response.raise_for_status()

    async def stats(self) -> dict[str, Any]:
        return dict(await self._get("/_fake/stats"))

    async def deliveries(self) -> list[Delivery]:
        body = await self._get("/_fake/deliveries")
        records = body.get("deliveries", body) if isinstance(body, dict) else body
        out: list[Delivery] = []
        for record in records:
            for to in _recipients(record):
                out.append(
                    Delivery(
                        to=to,
                        received_wall=_wall(record.get("received_at_wall", record["received_at"])),
                        idempotency_key=record.get("idempotency_key"),
                    )
                )
        return out

    async def reset(self) -> None:
        await self._post("/_fake/reset")

    async def configure(self, **config: Any) -> None:
        await self._post("/_fake/config", config)

    async def delivered_count(self) -> int:
        return int((await self.stats()).get("deliveries", 0))
