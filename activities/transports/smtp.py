"""SMTP to any relay as a transport (`SMTP_URL`), with `aiosmtplib`: one connection per email.

The message is a stdlib MIME message (`mime_message`): headers, text and HTML alternative,
base64 attachments, and a `Message-ID` derived from the idempotency key, the same on every
attempt, so a receiver can deduplicate. Invite tokens are filled in before (the worker wraps
every transport in `TokenFillingTransport`).

What a failure means (docs/providers.md):
- no connection, TLS handshake failure, AUTH refused, or a connection lost before DATA: the
  relay provably did not take the email (`not_accepted`);
- a 4xx reply (to MAIL, any RCPT, or DATA): not taken, transient (`ProviderDeferred`);
- a 5xx reply: not taken, permanent (`ProviderRejected`; `ProviderAuthFailed` for AUTH).
  Recipients are all-or-nothing: if the relay refuses any recipient, the transaction is
  reset before DATA and nothing is sent, so an email never reaches only some of them;
- a connection lost or a timeout once DATA was sent: outcome unknown. SMTP has no
  idempotency key (`deduplicates_by_key=False`), so the attempt says `retry_may_duplicate`
  and the engine ends the email `undetermined` instead of resending it.
A 250 after DATA is `sent`; its id is the Message-ID. SMTP reports no delivery events.
SMTP has no batch call: `send_batch` sends one transaction per email (see its docstring).
"""

from __future__ import annotations

import base64
import binascii
import email.message
import email.utils
import hashlib
import ssl
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib

from activities import errors
from activities.transports.base import (
    ProviderFailure,
    SentBatch,
    SentEmail,
    TransportCapabilities,
    sending_without_dedupe,
)
from activities.types import BatchItemOutcome, EmailAttachment, EmailMessage

DEFAULT_MAX_MESSAGE_BYTES = 25 * 1024 * 1024
MAX_REPLY_TEXT = 300


@dataclass(frozen=True)
class SmtpConfig:
    """Where and how to connect, parsed from `SMTP_URL`."""

    host: str
    port: int
    username: str | None
    password: str | None
    implicit_tls: bool
    starttls: bool

    @classmethod
    def from_url(cls, url: str) -> SmtpConfig:
        """`smtp://user:pass@host:port` (`smtps://`: implicit TLS; `?starttls=true`)."""
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("SMTP_URL must look like smtp://user:pass@host:port or smtps://...")
        implicit = parts.scheme == "smtps"
        query = parse_qs(parts.query)
        starttls = query.get("starttls", ["false"])[-1].lower() in ("1", "true", "yes")
        if implicit and starttls:
            raise ValueError("SMTP_URL: smtps:// is already TLS; do not add starttls=true")
        default_port = 465 if implicit else (587 if starttls else 25)
        return cls(
            host=parts.hostname,
            port=parts.port or default_port,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password is not None else None,
            implicit_tls=implicit,
            starttls=starttls,
        )


def message_id(idempotency_key: str, sender: str) -> str:
    """The email's Message-ID: from its idempotency key, so every attempt carries the same."""
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]
    domain = email.utils.parseaddr(sender)[1].rpartition("@")[2] or "durable-mail.local"
    return f"<{digest}@{domain}>"


def _attach(mime: email.message.EmailMessage, attachment: EmailAttachment) -> None:
    if attachment.content is None:
        # A `path` is a URL the provider would fetch; this transport fetches nothing.
        raise ProviderFailure(
            errors.REJECTED,
            "not sent: an attachment given by URL (path) cannot go through SMTP; "
            "send its content instead",
        )
    try:
        data = base64.b64decode(attachment.content, validate=True)
    except (binascii.Error, ValueError):
        raise ProviderFailure(
            errors.REJECTED, "not sent: an attachment's content is not valid base64"
        ) from None
    maintype, _, subtype = (attachment.content_type or "application/octet-stream").partition("/")
    mime.add_attachment(
        data,
        maintype=maintype or "application",
        subtype=subtype or "octet-stream",
        filename=attachment.filename or "attachment",
        disposition="inline" if attachment.content_id else "attachment",
        cid=f"<{attachment.content_id}>" if attachment.content_id else None,
    )


def mime_message(message: EmailMessage, idempotency_key: str) -> email.message.EmailMessage:
    """The email as MIME: the same whatever the transport (Bcc only in the envelope)."""
    mime = email.message.EmailMessage()
    mime["From"] = message.sender
    mime["To"] = ", ".join(message.to)
    if message.cc:
        mime["Cc"] = ", ".join(message.cc)
    if message.reply_to:
        mime["Reply-To"] = ", ".join(message.reply_to)
    mime["Subject"] = message.subject
    mime["Date"] = email.utils.formatdate(localtime=False)
    mime["Message-ID"] = message_id(idempotency_key, message.sender)
    for name, value in message.headers.items():
        if name not in mime:  # the caller's headers never replace the structural ones
            mime[name] = value
    mime.set_content(message.text or "")
    if message.html is not None:
        mime.add_alternative(message.html, subtype="html")
    for attachment in message.attachments:
        _attach(mime, attachment)
    return mime


@dataclass(frozen=True)
class _Outgoing:
    """One email as it goes on the wire: its Message-ID, bytes and envelope."""

    message_id: str
    body: bytes
    sender: str
    recipients: list[str]


def _outgoing(message: EmailMessage, idempotency_key: str) -> _Outgoing:
    """The email's MIME bytes and envelope; raises `ProviderFailure` (not accepted) for an
    email SMTP cannot carry, before any connection."""
    mime = mime_message(message, idempotency_key)
    return _Outgoing(
        message_id=str(mime["Message-ID"]),
        body=mime.as_bytes(policy=mime.policy.clone(linesep="\r\n")),
        sender=email.utils.parseaddr(message.sender)[1],
        recipients=[email.utils.parseaddr(r)[1] for r in [*message.to, *message.cc, *message.bcc]],
    )


def _prepared(message: EmailMessage, idempotency_key: str) -> _Outgoing | ProviderFailure:
    """A batch's email ready to go, or why it cannot (refused in its item)."""
    try:
        return _outgoing(message, idempotency_key)
    except ProviderFailure as failure:
        return failure


def _reply(exc: aiosmtplib.SMTPResponseException) -> str:
    return f"{exc.code} {exc.message}"[:MAX_REPLY_TEXT]


def _refused(exc: aiosmtplib.SMTPResponseException, stage: str) -> ProviderFailure:
    """A relay's 4xx (deferred, transient) or 5xx (rejected, permanent): nothing was taken."""
    error_type = errors.PROVIDER_DEFERRED if 400 <= exc.code < 500 else errors.REJECTED
    if stage == "AUTH" and exc.code >= 500:
        error_type = errors.AUTH_FAILED
    return ProviderFailure(
        error_type,
        f"SMTP {exc.code} to {stage} from the relay: not taken",
        http_status=exc.code,
        provider_error=f"smtp_{exc.code}",
        provider_message=_reply(exc),
    )


class SmtpTransport:
    """One SMTP transaction per email on its own connection (TLS checked by default)."""

    name = "smtp"

    def __init__(
        self,
        config: SmtpConfig,
        *,
        timeout: float = 15.0,
        ca_file: Path | None = None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        self._config = config
        self._timeout = timeout
        self._tls = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
        self.capabilities = TransportCapabilities(
            reports_delivery_events=False,
            deduplicates_by_key=False,
            # No batch call: `send_batch` sends one transaction per email (as many as asked).
            max_batch=100,
            max_request_bytes=max_message_bytes,
            batch_attachments=True,
        )

    async def send(self, message: EmailMessage, idempotency_key: str) -> SentEmail:
        outgoing = _outgoing(message, idempotency_key)  # a refusal here: nothing connected
        client = await self._open()
        try:
            return await self._transaction(client, outgoing)
        finally:
            await _close(client)

    async def send_batch(self, messages: list[EmailMessage], idempotency_key: str) -> SentBatch:
        """SMTP has no batch call: one transaction per email, in order, on one connection.

        An email the relay refuses (4xx or 5xx) is refused in its item; once the relay is
        lost before an email's DATA, that one and the rest are refused as not sent. A failure
        whose outcome is unknown (the connection lost once an email's DATA went) fails the
        whole call as `ProviderNetworkError`: the emails before it were sent, that one may
        have been, and a batch retried could send them twice, so the batch ends
        `undetermined` (SMTP cannot deduplicate). No connection: nothing sent, as `send`."""
        prepared = [_prepared(m, f"{idempotency_key}/{i}") for i, m in enumerate(messages)]
        client = await self._open()
        items: list[BatchItemOutcome] = []
        try:
            for outgoing in prepared:
                try:
                    if isinstance(outgoing, ProviderFailure):
                        raise outgoing
                    if not client.is_connected:
                        raise ProviderFailure(errors.PROVIDER_UNREACHABLE, "the relay was lost")
                    sent = await self._transaction(client, outgoing)
                except ProviderFailure as failure:
                    if failure.error_type not in errors.NOT_ACCEPTED:
                        raise
                    items.append(BatchItemOutcome(refusal=f"not sent: {failure.message}"))
                    continue
                items.append(BatchItemOutcome(provider_message_id=sent.provider_message_id))
        finally:
            await _close(client)
        return SentBatch(items, 250)

    async def _transaction(self, client: aiosmtplib.SMTP, outgoing: _Outgoing) -> SentEmail:
        """MAIL, RCPT, DATA of one email on an open connection."""
        await self._envelope(client, outgoing.sender, outgoing.recipients, len(outgoing.body))
        # From here a lost answer leaves the outcome unknown (see the module docstring).
        sending_without_dedupe(self.name)
        try:
            response = await client.data(outgoing.body)
        except aiosmtplib.SMTPResponseException as exc:
            raise _refused(exc, "DATA") from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            # The message went out; whether the relay took it is unknown.
            raise ProviderFailure(
                errors.NETWORK_ERROR,
                f"lost the relay after sending the message ({type(exc).__name__})",
            ) from None
        return SentEmail(provider_message_id=outgoing.message_id, http_status=response.code)

    async def _open(self) -> aiosmtplib.SMTP:
        """Connected, TLS set up and authenticated; any failure here: nothing was sent."""
        config = self._config
        client = aiosmtplib.SMTP(
            hostname=config.host,
            port=config.port,
            use_tls=config.implicit_tls,
            start_tls=False,
            tls_context=self._tls,
            timeout=self._timeout,
        )
        stage = "connect"
        try:
            await client.connect()
            if config.starttls:
                stage = "STARTTLS"
                await client.starttls(tls_context=self._tls)
            if config.username is not None:
                stage = "AUTH"
                await client.login(config.username, config.password or "")
        except aiosmtplib.SMTPResponseException as exc:
            await _close(client)
            raise _refused(exc, stage) from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            await _close(client)
            raise ProviderFailure(
                errors.PROVIDER_UNREACHABLE,
                f"could not connect to the relay ({stage}: {type(exc).__name__}): nothing sent",
            ) from None
        return client

    async def _envelope(
        self, client: aiosmtplib.SMTP, sender: str, recipients: list[str], size: int
    ) -> None:
        """MAIL and every RCPT; any refusal resets the transaction before DATA."""
        limit = client.esmtp_extensions.get("size", "")
        if limit.isdigit() and 0 < int(limit) < size:
            raise ProviderFailure(
                errors.REJECTED,
                f"not sent: {size} bytes is over the relay's SIZE limit of {limit}",
            )
        stage = "MAIL"
        try:
            await client.mail(sender)
            refusals: list[aiosmtplib.SMTPResponseException] = []
            for recipient in recipients:
                stage = "RCPT"
                try:
                    await client.rcpt(recipient)
                except aiosmtplib.SMTPRecipientRefused as exc:
                    refusals.append(exc)
            if refusals:
                await client.rset()
                # A permanent refusal of any recipient refuses the email; else retry later.
                worst = max(refusals, key=lambda exc: exc.code)
                failure = _refused(worst, "RCPT")
                failure.message = (
                    f"SMTP {worst.code} to RCPT for {len(refusals)} of {len(recipients)} "
                    "recipients: not taken, nothing sent"
                )
                raise failure
        except aiosmtplib.SMTPResponseException as exc:
            raise _refused(exc, stage) from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise ProviderFailure(
                errors.PROVIDER_UNREACHABLE,
                f"lost the relay before sending the message ({stage}: {type(exc).__name__})",
            ) from None


async def _close(client: aiosmtplib.SMTP) -> None:
    """QUIT if still connected; the outcome is already known, so errors do not matter."""
    if not client.is_connected:
        return
    try:
        await client.quit()
    except (aiosmtplib.SMTPException, OSError):
        client.close()
