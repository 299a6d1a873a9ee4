"""A real SMTP server (aiosmtpd) for tests, the chaos scenarios and `make dev PROVIDER=smtp`:
STARTTLS on a self-signed certificate made here (its PEM is the CA file a client trusts,
`SMTP_CA_FILE`) and AUTH required; what it receives is kept in memory and, with a spool
directory, written there as `.eml` files.

`python -m testkit.smtp_server --port N --dir .dev/smtp` runs one until SIGTERM (the password
comes from DEV_SMTP_PASSWORD, never the command line); `make dev PROVIDER=smtp` starts it.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import ipaddress
import itertools
import logging
import os
import signal
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from testkit.procs import free_port

log = logging.getLogger("testkit.smtp_server")

USER, PASSWORD = "relay-user", "relay-pass"


@dataclass
class Relay:
    """What the SMTP server received, and how it answers (set per test)."""

    spool: Path | None = None
    received: list[Envelope] = field(default_factory=list)
    rcpt_reply: dict[str, str] = field(default_factory=dict)
    data_reply: str = "250 OK queued"
    drop_after_data: bool = False
    # Seconds between taking a message and answering it (a relay slower than the attempt).
    data_delay: float = 0.0
    _numbers: Iterator[int] = field(default_factory=itertools.count, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def recipients(self) -> list[str]:
        """Every envelope recipient of every message taken, once per message."""
        return [address for envelope in list(self.received) for address in envelope.rcpt_tos]

    async def handle_RCPT(  # noqa: N802 (aiosmtpd's hook name)
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if address in self.rcpt_reply:
            return self.rcpt_reply[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        if self.drop_after_data:
            # The relay took the message, then the connection is lost before its answer.
            self._take(envelope)
            assert isinstance(server.transport, asyncio.Transport)
            server.transport.abort()
            return "250 OK"
        if self.data_reply.startswith("250"):
            self._take(envelope)
        await asyncio.sleep(self.data_delay)
        return self.data_reply

    def _take(self, envelope: Envelope) -> None:
        with self._lock:
            self.received.append(envelope)
            number = next(self._numbers)
        if self.spool is not None and isinstance(envelope.content, bytes):
            stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
            (self.spool / f"{stamp}-{number:05d}.eml").write_bytes(envelope.content)


def _authenticator(user: str, password: str) -> Any:
    def authenticate(
        server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == user.encode()
            and auth_data.password == password.encode()
        )
        return AuthResult(success=ok, handled=False)  # aiosmtpd answers 535 when refused

    return authenticate


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (also its own CA) and its key, written to `directory`."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "relay.crt", directory / "relay.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.touch(mode=0o600)
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def server_tls(directory: Path) -> tuple[ssl.SSLContext, Path]:
    """A server TLS context on a new self-signed certificate, and that certificate's file."""
    cert_file, key_file = self_signed(directory)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert_file, key_file)
    return tls, cert_file


@dataclass
class SmtpServer:
    """A running relay: where it listens and the CA file that makes its certificate trusted."""

    relay: Relay
    port: int
    ca_file: Path
    user: str = USER
    password: str = PASSWORD

    def url(self, user: str | None = None, password: str | None = None) -> str:
        """`SMTP_URL` for this relay (STARTTLS, AUTH)."""
        return (
            f"smtp://{user or self.user}:{password or self.password}"
            f"@127.0.0.1:{self.port}?starttls=true"
        )

    def env(self) -> dict[str, str]:
        """What makes a worker send through this relay (after PROVIDERS names smtp)."""
        return {"SMTP_URL": self.url(), "SMTP_CA_FILE": str(self.ca_file)}


@contextmanager
def smtp_server(
    directory: Path,
    *,
    port: int = 0,
    spool: Path | None = None,
    user: str = USER,
    password: str = PASSWORD,
) -> Iterator[SmtpServer]:
    """A relay on 127.0.0.1 (its own thread and event loop) requiring STARTTLS, then AUTH."""
    tls, cert_file = server_tls(directory)
    relay = Relay(spool=spool)
    port = port or free_port()
    controller = Controller(
        relay,
        hostname="127.0.0.1",
        port=port,
        tls_context=tls,
        require_starttls=True,
        auth_required=True,
        auth_require_tls=True,
        authenticator=_authenticator(user, password),
    )
    controller.start()
    try:
        yield SmtpServer(relay, port, cert_file, user, password)
    finally:
        controller.stop()


def main() -> None:
    """Run a relay until SIGTERM/SIGINT: messages to `--dir`/*.eml, its CA at `--dir`/relay.crt."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = argparse.ArgumentParser(prog="python -m testkit.smtp_server")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", type=Path, required=True)
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    password = os.environ.get("DEV_SMTP_PASSWORD") or PASSWORD
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    with smtp_server(args.dir, port=args.port, spool=args.dir, password=password) as server:
        log.info(
            "SMTP relay on 127.0.0.1:%d (STARTTLS, AUTH); messages in %s", server.port, args.dir
        )
        stopped.wait()


if __name__ == "__main__":
    main()
