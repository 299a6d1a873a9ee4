"""`make fault KIND=500|429|timeout [COUNT=1]`: the next sends of `make dev PROVIDER=fake` fail.

Queues COUNT faults in the bundled fake Resend that `make dev PROVIDER=fake` runs; each is
consumed by the next send attempt, so a send retries and every attempt shows in the Web UI
and in `GET /v1/emails/{id}`. Kinds: `500` (server error), `429` (rate limited, with a
`retry-after`), `timeout` (the fake accepts the email but answers after the worker gave
up: the retry reuses the idempotency key and is deduplicated), or any status 400..599
(4xx other than 429 are permanent: the send fails at once).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from testkit.fake_resend import FakeResendClient, fault_of_kind  # noqa: E402

# Written by `make dev PROVIDER=fake` (scripts/dev.py) when the fake is up.
URL_FILE = Path(__file__).resolve().parent.parent / ".dev" / "fake_resend_url"

log = logging.getLogger("fault")


def fake_url(given: str | None) -> str:
    if given:
        return given
    if not URL_FILE.exists():
        raise SystemExit(f"no {URL_FILE}: start `make dev PROVIDER=fake` first (or pass --url)")
    return URL_FILE.read_text().strip()


async def inject(url: str, kind: str, count: int, retry_after: int) -> int:
    """Queue `count` faults of `kind`; returns how many are pending in the fake."""
    client = FakeResendClient(url, timeout=5.0)
    try:
        return await client.enqueue_faults([fault_of_kind(kind, retry_after=retry_after)] * count)
    finally:
        await client.aclose()


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    parser = argparse.ArgumentParser(prog="make fault", description=__doc__.splitlines()[0])
    parser.add_argument("kind", help="500, 429, timeout or another status 400..599")
    parser.add_argument("--count", type=int, default=1, help="how many next attempts fail")
    parser.add_argument("--retry-after", type=int, default=2, help="seconds, for 429")
    parser.add_argument("--url", default=os.environ.get("FAKE_RESEND_URL"))
    args = parser.parse_args(argv)
    if args.count < 1:
        parser.error("--count must be at least 1")
    try:
        fault_of_kind(args.kind)
    except ValueError as error:
        parser.error(str(error))
    url = fake_url(args.url)
    pending = asyncio.run(inject(url, args.kind, args.count, args.retry_after))
    log.info(
        "the next %d send attempt(s) get %s from the fake Resend at %s (%d pending); "
        "send an email and watch its attempts in the Web UI",
        args.count,
        args.kind,
        url,
        pending,
    )


if __name__ == "__main__":
    main()
