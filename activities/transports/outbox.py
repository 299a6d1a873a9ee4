"""Development transport: each email becomes .eml and .html files a person can open.

Used when no RESEND_API_KEY is set. Idempotent like Resend: the same key writes once.
"""

from __future__ import annotations

import asyncio
import base64
import email.message
import email.utils
import hashlib
import json
import re
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from activities.transports.base import SentBatch, SentEmail
from activities.transports.resend import CAPABILITIES as RESEND_CAPABILITIES
from activities.types import BatchItemOutcome, EmailAttachment, EmailMessage

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def _attach(mime: email.message.EmailMessage, attachment: EmailAttachment) -> None:
    """Inline content becomes a MIME part; a `path` (a URL Resend would fetch) is noted."""
    filename = attachment.filename or "attachment"
    if attachment.content is None:
        mime["X-Durable-Mail-Remote-Attachment"] = f"{filename}: {attachment.path}"
        return
    maintype, _, subtype = (attachment.content_type or "application/octet-stream").partition("/")
    mime.add_attachment(
        base64.b64decode(attachment.content),
        maintype=maintype,
        subtype=subtype or "octet-stream",
        filename=filename,
    )


class OutboxTransport:
    """Writes each email into `directory` instead of sending it (nothing leaves the machine)."""

    name = "outbox"
    # Nothing is delivered, so no event ever comes; the same key writes once (a marker file),
    # as Resend deduplicates; Resend's limits, so what works here works there.
    capabilities = replace(
        RESEND_CAPABILITIES, reports_delivery_events=False, batch_attachments=True, sends_mail=False
    )

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    async def send(self, message: EmailMessage, idempotency_key: str) -> SentEmail:
        return await asyncio.to_thread(self._write, message, idempotency_key)

    async def send_batch(self, messages: list[EmailMessage], idempotency_key: str) -> SentBatch:
        """Each email of the batch as its own files, under `<key>/<index>` (idempotent too)."""
        return await asyncio.to_thread(self._write_batch, messages, idempotency_key)

    def _write_batch(self, messages: list[EmailMessage], idempotency_key: str) -> SentBatch:
        sent = [self._write(m, f"{idempotency_key}/{i}") for i, m in enumerate(messages)]
        items = [BatchItemOutcome(provider_message_id=s.provider_message_id) for s in sent]
        return SentBatch(items, 200)

    def _write(self, message: EmailMessage, idempotency_key: str) -> SentEmail:
        self.directory.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:24]
        marker = self.directory / ".sent" / f"{digest}.json"
        if marker.exists():
            return SentEmail(json.loads(marker.read_text())["id"], 200)
        message_id = f"outbox-{digest}"
        stem = f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{_UNSAFE.sub('_', idempotency_key)[:80]}"
        mime = email.message.EmailMessage()
        mime["From"] = message.sender
        mime["To"] = ", ".join(message.to)
        mime["Subject"] = message.subject
        mime["Date"] = email.utils.formatdate(localtime=False)
        mime["Message-ID"] = f"<{message_id}@outbox.durable-mail.local>"
        mime["X-Durable-Mail-Outbox"] = "NOT SENT: written to the local outbox (no RESEND_API_KEY)"
        if message.reply_to:
            mime["Reply-To"] = ", ".join(message.reply_to)
        if message.cc:
            mime["Cc"] = ", ".join(message.cc)
        if message.bcc:
            # Not a header of the email itself: shown here so the outbox tells who gets it.
            mime["X-Durable-Mail-Bcc"] = ", ".join(message.bcc)
        mime.set_content(message.text or "")
        if message.html is not None:
            mime.add_alternative(message.html, subtype="html")
            banner = (
                '<div style="background:#fde68a;padding:8px;font-family:sans-serif">'
                "durable-mail dev outbox: this email was NOT sent (no RESEND_API_KEY).</div>"
            )
            (self.directory / f"{stem}.html").write_text(banner + message.html, encoding="utf-8")
        for attachment in message.attachments:
            _attach(mime, attachment)
        for name, value in message.headers.items():
            if name not in mime:  # the caller's own headers never replace the structural ones
                mime[name] = value
        (self.directory / f"{stem}.eml").write_bytes(bytes(mime))
        marker.parent.mkdir(exist_ok=True)
        marker.write_text(json.dumps({"id": message_id, "file": f"{stem}.eml"}))
        return SentEmail(message_id, 200)
