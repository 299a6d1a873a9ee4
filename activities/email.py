"""The send activity and the transports it sends through: Resend's HTTP API or a local outbox.

Every attempt of one email carries the same `Idempotency-Key`, derived from the email's
business id (not the run id), so a retry after a timeout or a worker crash is deduplicated
by Resend instead of delivering twice.
"""

from __future__ import annotations

import asyncio
import email.message
import email.utils
import hashlib
import json
import logging
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from activities import errors
from activities.types import (
    AttemptFailureDetails,
    DeliverEmailInput,
    DeliverEmailResult,
    EmailMessage,
)

log = logging.getLogger(__name__)

MAX_ERROR_MESSAGE = 300


class ProviderFailure(Exception):
    """A classified failure of one send attempt (type from `activities.errors`)."""

    def __init__(
        self,
        error_type: str,
        message: str,
        *,
        http_status: int | None = None,
        provider_error: str | None = None,
        retry_after_seconds: float | None = None,
    ) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.http_status = http_status
        self.provider_error = provider_error
        self.retry_after_seconds = retry_after_seconds


@dataclass
class SentEmail:
    provider_message_id: str
    http_status: int


class EmailTransport(Protocol):
    """Where an email goes; raises `ProviderFailure` when it cannot be accepted."""

    name: str

    async def send(self, message: EmailMessage, idempotency_key: str) -> SentEmail: ...


def resend_payload(message: EmailMessage) -> dict[str, Any]:
    """The JSON body of `POST /emails` for a message (same message -> same bytes)."""
    body: dict[str, Any] = {"from": message.sender, "to": message.to, "subject": message.subject}
    if message.html is not None:
        body["html"] = message.html
    if message.text is not None:
        body["text"] = message.text
    if message.reply_to:
        body["reply_to"] = message.reply_to
    if message.tags:
        body["tags"] = [{"name": t.name, "value": t.value} for t in message.tags]
    return body


def _parse_seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = (when - datetime.now(UTC)).total_seconds()
    return max(seconds, 0.0)


class Pacer:
    """Spaces this process's provider calls at least `1 / rate` seconds apart.

    The task queue's server-side limit holds the fleet to the rate on average, but hands
    tasks out in bursts; a provider that counts per second (Resend) answers a burst with
    429s. Pacing the burst out keeps every call under the provider's limit.
    """

    def __init__(self, rate_per_second: float) -> None:
        self._interval = 1.0 / rate_per_second
        self._next = 0.0

    async def wait(self) -> None:
        now = time.monotonic()
        # Reserve the slot before sleeping: no await between the read and the write.
        slot = max(now, self._next)
        self._next = slot + self._interval
        if slot > now:
            await asyncio.sleep(slot - now)


class ResendTransport:
    """Resend's HTTP API through one shared `httpx.AsyncClient` (async, never blocks)."""

    name = "resend"

    def __init__(self, client: httpx.AsyncClient, api_key: str, pacer: Pacer | None = None) -> None:
        self._client = client
        self._api_key = api_key
        self._pacer = pacer

    async def send(self, message: EmailMessage, idempotency_key: str) -> SentEmail:
        if self._pacer is not None:
            await self._pacer.wait()
        headers = {
            "Authorization": f"Bearer {self._api_key}",
            "Idempotency-Key": idempotency_key,
            "User-Agent": "durable-mail/0.1",
        }
        try:
            response = await self._client.post(
                "/emails", json=resend_payload(message), headers=headers
            )
        except httpx.TimeoutException as exc:
            # Outcome unknown: Resend may have accepted it. The retry reuses the key.
            raise ProviderFailure(
                errors.NETWORK_ERROR, f"timed out talking to Resend ({type(exc).__name__})"
            ) from None
        except httpx.TransportError as exc:
            raise ProviderFailure(
                errors.NETWORK_ERROR, f"could not reach Resend ({type(exc).__name__})"
            ) from None
        if 200 <= response.status_code < 300:
            message_id = _json_field(response, "id")
            if message_id:
                return SentEmail(provider_message_id=message_id, http_status=response.status_code)
            raise ProviderFailure(
                errors.PROVIDER_UNAVAILABLE,
                "Resend answered success without an email id",
                http_status=response.status_code,
            )
        raise self._classify(response)

    def _classify(self, response: httpx.Response) -> ProviderFailure:
        status = response.status_code
        name = _json_field(response, "name") or ""
        detail = _json_field(response, "message") or response.reason_phrase
        text = self._redact(f"HTTP {status} {name or 'error'}: {detail}")[:MAX_ERROR_MESSAGE]
        retry_after = _parse_seconds(response.headers.get("retry-after")) or _parse_seconds(
            response.headers.get("ratelimit-reset")
        )

        def failure(error_type: str) -> ProviderFailure:
            return ProviderFailure(
                error_type,
                text,
                http_status=status,
                provider_error=name or None,
                retry_after_seconds=retry_after,
            )

        if status == 429:
            if name == "monthly_quota_exceeded":
                return failure(errors.MONTHLY_QUOTA_EXCEEDED)
            if name == "daily_quota_exceeded":
                return failure(errors.DAILY_QUOTA_EXCEEDED)
            return failure(errors.RATE_LIMITED)
        if status == 409:
            if name == "concurrent_idempotent_requests":
                return failure(errors.CONCURRENT_REQUEST)
            return failure(errors.IDEMPOTENCY_CONFLICT)
        if status in (401, 403) and name != "validation_error":
            return failure(errors.AUTH_FAILED)
        if status == 408 or status >= 500:
            return failure(errors.PROVIDER_UNAVAILABLE)
        return failure(errors.REJECTED)

    def _redact(self, text: str) -> str:
        return text.replace(self._api_key, "[redacted]") if self._api_key else text


def _json_field(response: httpx.Response, key: str) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    value = body.get(key) if isinstance(body, dict) else None
    return str(value) if value is not None else None


_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


class OutboxTransport:
    """Development transport: writes each email as .eml and .html files a person can open.

    Used when no RESEND_API_KEY is set. Idempotent like Resend: the same key writes once.
    """

    name = "outbox"

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    async def send(self, message: EmailMessage, idempotency_key: str) -> SentEmail:
        return await asyncio.to_thread(self._write, message, idempotency_key)

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
        mime.set_content(message.text or "")
        if message.html is not None:
            mime.add_alternative(message.html, subtype="html")
            banner = (
                '<div style="background:#fde68a;padding:8px;font-family:sans-serif">'
                "durable-mail dev outbox: this email was NOT sent (no RESEND_API_KEY).</div>"
            )
            (self.directory / f"{stem}.html").write_text(banner + message.html)
        (self.directory / f"{stem}.eml").write_bytes(bytes(mime))
        marker.parent.mkdir(exist_ok=True)
        marker.write_text(json.dumps({"id": message_id, "file": f"{stem}.eml"}))
        return SentEmail(message_id, 200)


class EmailActivities:
    """Provider-facing activities; the transport is injected (tests pass fakes or a fake URL)."""

    def __init__(self, transport: EmailTransport) -> None:
        self._transport = transport

    def _record_attempt(self, outcome: str, duration_ms: float) -> None:
        # Exported by the worker's runtime (Prometheus on WORKER_METRICS_PORT).
        meter = activity.metric_meter()
        labels = {"outcome": outcome, "transport": self._transport.name}
        meter.create_counter("email_send_attempts", "Provider send attempts", "{attempt}").add(
            1, labels
        )
        meter.create_histogram(
            "email_provider_latency", "Provider answer time of one attempt", "ms"
        ).record(round(duration_ms), labels)

    @activity.defn(name="deliver_email")
    async def deliver_email(self, data: DeliverEmailInput) -> DeliverEmailResult:
        """Send one email once; classify a failure as transient or permanent."""
        started_at = datetime.now(UTC).isoformat()
        started = time.monotonic()
        try:
            sent = await self._transport.send(data.message, data.idempotency_key)
        except ProviderFailure as failure:
            permanent = failure.error_type in errors.PERMANENT_ERRORS
            duration_ms = (time.monotonic() - started) * 1000
            self._record_attempt(failure.error_type, duration_ms)
            # The provider's message can quote a recipient: it goes only into the
            # (encrypted) history, the log line keeps the type and status.
            activity.logger.warning(
                "send attempt %d failed: %s (HTTP %s)",
                data.attempt,
                failure.error_type,
                failure.http_status or "-",
            )
            raise ApplicationError(
                failure.message,
                AttemptFailureDetails(
                    http_status=failure.http_status,
                    provider_error=failure.provider_error,
                    started_at=started_at,
                    duration_ms=round(duration_ms, 1),
                    retry_after_seconds=failure.retry_after_seconds,
                ),
                type=failure.error_type,
                non_retryable=permanent,
                # Transient provider trouble is expected: our own warning above is enough,
                # the SDK need not log a stack trace or count it as a task failure.
                category=ApplicationErrorCategory.UNSPECIFIED
                if permanent
                else ApplicationErrorCategory.BENIGN,
            ) from None
        duration_ms = (time.monotonic() - started) * 1000
        self._record_attempt("accepted", duration_ms)
        activity.logger.info(
            "send attempt %d accepted by %s in %.0f ms",
            data.attempt,
            self._transport.name,
            duration_ms,
        )
        return DeliverEmailResult(
            provider_message_id=sent.provider_message_id,
            http_status=sent.http_status,
            transport=self._transport.name,
            started_at=started_at,
            duration_ms=round(duration_ms, 1),
        )
