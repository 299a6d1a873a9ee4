"""Serve a `FakeResend` with uvicorn on a background thread, inside the test's own process."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

import uvicorn

from testkit.fake_resend.app import build_app
from testkit.fake_resend.store import FakeResend

logger = logging.getLogger("testkit.fake_resend")


class _ThreadServer(uvicorn.Server):
    """A uvicorn server that tells another thread when it accepts connections, and that
    answers held requests at once when it stops instead of cancelling them."""

    def __init__(self, config: uvicorn.Config, draining: asyncio.Event) -> None:
        super().__init__(config)
        self.ready = threading.Event()
        self.draining = draining

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self.ready.set()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.draining.set()
        await super().shutdown(sockets=sockets)


@dataclass
class FakeResendServer:
    """Serve a ``FakeResend`` with uvicorn on a background thread (its own event loop).

    Use it as a context manager, sync or async; ``url`` and ``fake`` are ready inside.
    Port 0 picks a free port.
    """

    fake: FakeResend = field(default_factory=FakeResend)
    host: str = "127.0.0.1"
    port: int = 0
    startup_timeout: float = 10.0
    _server: _ThreadServer | None = field(default=None, init=False, repr=False)
    _thread: threading.Thread | None = field(default=None, init=False, repr=False)

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the server is not running")
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("the server is already running")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        draining = asyncio.Event()
        config = uvicorn.Config(
            build_app(self.fake, draining),
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=1,
            # Longer than clients' idle pools keep connections, so a benchmark never races
            # the server closing an idle keep-alive connection.
            timeout_keep_alive=60,
        )
        server = _ThreadServer(config, draining)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="fake-resend", daemon=True
        )
        self._server, self._thread = server, thread
        thread.start()
        # The server thread runs its own event loop: this thread can only wait on an Event.
        deadline = time.monotonic() + self.startup_timeout
        while not server.ready.wait(timeout=0.05):
            if not thread.is_alive() or time.monotonic() >= deadline:
                self.stop()
                sock.close()
                raise RuntimeError(f"fake Resend did not start on {self.host}:{self.port}")
        logger.info("fake Resend listening on %s", self.url)

    def stop(self, timeout: float = 5.0) -> None:
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.should_exit = True
        thread.join(timeout)
        if thread.is_alive():
            server.force_exit = True
            thread.join(timeout)
            logger.warning("fake Resend thread still alive after %.1fs", 2 * timeout)
        self._server = self._thread = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)
