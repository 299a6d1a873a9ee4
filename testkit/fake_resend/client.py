"""Drive a fake Resend that runs elsewhere (another process, another thread) over its
`/_fake/*` control routes, with the same types the in-process `FakeResend` uses."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from testkit.fake_resend.faults import DEFAULT_API_KEY, FakeConfig, Fault
from testkit.fake_resend.store import Delivery, FakeStats
from testkit.polling import eventually
from testkit.procs import Proc


class FakeResendClient:
    """Typed client of the control routes of the fake Resend at `url`."""

    def __init__(self, url: str, *, timeout: float = 30.0) -> None:
        self.url = url
        self._http = httpx.AsyncClient(base_url=url, timeout=timeout)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _call(self, method: str, path: str, body: Any = None) -> Any:
        response = await self._http.request(method, path, json=body)
        if response.status_code == 400:
            # A setting or a fault the fake refuses, as `FakeResend` itself would.
            raise ValueError(response.json()["message"])
        response.raise_for_status()
        return response.json()

    async def stats(self) -> FakeStats:
        return FakeStats.from_json(await self._call("GET", "/_fake/stats"))

    async def deliveries(self) -> list[Delivery]:
        """Every email the fake accepted, oldest first."""
        return [Delivery.from_json(d) for d in await self._call("GET", "/_fake/deliveries")]

    async def delivered_count(self) -> int:
        return (await self.stats()).deliveries

    async def config(self) -> FakeConfig:
        return FakeConfig(**await self._call("GET", "/_fake/config"))

    async def configure(self, **changes: Any) -> FakeConfig:
        """Change any of `FakeConfig`'s fields now, e.g. `configure(error_rate=0.1)`."""
        return FakeConfig(**await self._call("POST", "/_fake/config", changes))

    async def enqueue_faults(self, faults: Iterable[Fault]) -> int:
        """Queue faults for the next sends, in order; returns how many are pending."""
        answer = await self._call("POST", "/_fake/faults", [f.to_json() for f in faults])
        return int(answer["pending_faults"])

    async def reset(self) -> FakeStats:
        """Forget deliveries, counters and faults; restore the fake's start-up settings."""
        return FakeStats.from_json(await self._call("POST", "/_fake/reset"))

    async def wait_for_deliveries(
        self, n: int, *, timeout: float, interval: float = 0.2
    ) -> list[Delivery]:
        """Wait until at least `n` deliveries were recorded; return them all."""

        async def enough() -> bool:
            return await self.delivered_count() >= n

        await eventually(enough, timeout=timeout, interval=interval, what=f"{n} deliveries")
        return await self.deliveries()


@dataclass
class FakeResendProcess:
    """A fake Resend in its own process (`python -m testkit.fake_resend`) and its client."""

    proc: Proc
    client: FakeResendClient

    @property
    def url(self) -> str:
        return self.client.url

    @classmethod
    async def start(
        cls,
        log_dir: Path,
        *,
        latency: float = 0.0,
        rate_limit: float | None = None,
        api_key: str = DEFAULT_API_KEY,
        name: str = "fake_resend",
    ) -> FakeResendProcess:
        args = [sys.executable, "-m", "testkit.fake_resend", "--host", "127.0.0.1"]
        args += ["--port", "0", "--latency", str(latency), "--api-key", api_key]
        if rate_limit is not None:
            args += ["--rate-limit", str(rate_limit)]
        proc = Proc(name, args, {}, log_dir / f"{name}.log", stdout_pipe=True)
        proc.start()
        try:
            line = await proc.read_line(timeout=20)
            url = str(json.loads(line)["url"])
        except BaseException:
            await proc.stop()
            raise
        return cls(proc, FakeResendClient(url))

    async def close(self) -> None:
        await self.client.aclose()
        await self.proc.stop()
