"""Run a fake Resend API as its own process: `python -m testkit.fake_resend --port 0 ...`.

The only stdout output is one JSON line with its URL, `{"url": "http://127.0.0.1:PORT"}`;
it serves until SIGTERM or SIGINT. Drive it with `testkit.fake_resend.FakeResendClient`.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from dataclasses import fields
from types import FrameType

from testkit.fake_resend.faults import DEFAULT_API_KEY, FakeConfig
from testkit.fake_resend.server import FakeResendServer
from testkit.fake_resend.store import FakeResend

logger = logging.getLogger("testkit.fake_resend")


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    # Each setting's `dest` is its `FakeConfig` field.
    parser = argparse.ArgumentParser(
        prog="python -m testkit.fake_resend", description="Run a fake Resend API."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--api-key", default=DEFAULT_API_KEY)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per POST /emails")
    parser.add_argument(
        "--rate-limit",
        dest="rate_limit_per_second",
        type=float,
        default=None,
        help="requests per second",
    )
    parser.add_argument("--error-rate", type=float, default=0.0, help="0..1")
    parser.add_argument("--error-status", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--log-level", default="WARNING")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Serve until SIGTERM or SIGINT."""
    args = _parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr)
    config = FakeConfig(**{f.name: getattr(args, f.name) for f in fields(FakeConfig)})
    fake = FakeResend(config, seed=args.seed)
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    with FakeResendServer(fake, host=args.host, port=args.port) as server:
        sys.stdout.write(json.dumps({"url": server.url}) + "\n")
        sys.stdout.flush()
        stop.wait()
        logger.info("stopping fake Resend")


if __name__ == "__main__":
    main()
