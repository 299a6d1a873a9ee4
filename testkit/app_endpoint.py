"""An app's webhook endpoint for tests: records what reaches it, can fail or redirect."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.monotonic)


@dataclass
class Endpoint:
    """What came in (successful or not) and how to answer the next requests."""

    url: str
    received: list[Received] = field(default_factory=list)
    # Answer 500 to this many requests first (a failing endpoint), then 200.
    fail_first: int = 0
    redirect_to: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def accepted(self) -> list[Received]:
        """The requests answered 200, in arrival order."""
        with self.lock:
            return [r for r in self.received if r.headers.get("x-answered") == "200"]


@contextmanager
def app_endpoint() -> Iterator[Endpoint]:
    """An HTTP endpoint on 127.0.0.1 (a free port) in a thread, stopped on exit."""
    endpoint = Endpoint(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            with endpoint.lock:
                failing = endpoint.fail_first > 0
                endpoint.fail_first -= 1 if failing else 0
                if endpoint.redirect_to:
                    code = 302
                else:
                    code = 500 if failing else 200
                headers["x-answered"] = str(code)
                endpoint.received.append(Received(self.path, headers, body))
            self.send_response(code)
            if code == 302 and endpoint.redirect_to:
                self.send_header("Location", endpoint.redirect_to)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    endpoint.url = f"http://127.0.0.1:{server.server_address[1]}/hooks"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield endpoint
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
