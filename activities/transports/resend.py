"""Resend's HTTP API (`POST /emails`, `POST /emails/batch`) as a transport: one pooled
client, answers classified.

The `Idempotency-Key` header carries the send's key on every attempt, so Resend returns the
first answer to a retry instead of sending twice (within its 24 h window).

Batch calls use `x-batch-validation: permissive`: an email Resend refuses comes back in the
answer's `errors` (by index) while its siblings are sent; in the default strict mode one bad
email would refuse all of them.
"""

from __future__ import annotations

import email.utils
import re
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import httpx

from activities import errors
from activities.delivery_contract import MAX_BATCH_EMAILS
from activities.transports.base import (
    ProviderFailure,
    SentBatch,
    SentEmail,
    TransportCapabilities,
)
from activities.transports.pacer import Pacer, TurnTooLate, attempt_deadline
from activities.types import BatchItemOutcome, EmailMessage

MAX_ERROR_MESSAGE = 300
BATCH_VALIDATION = "permissive"
# A request's own time when the HTTP client sets no read timeout (ours always sets one).
DEFAULT_REQUEST_SECONDS = 30.0
_ERROR_CODE = re.compile(r"[a-z][a-z0-9_]{0,63}")
# https://resend.com/docs/api-reference/emails/send-email: 40 MB per email after Base64;
# https://resend.com/docs/dashboard/emails/attachments: no attachments on the batch endpoint.
# Webhooks report each email's delivery; a key deduplicates for 24 h (shared/reference §1.2).
CAPABILITIES = TransportCapabilities(
    reports_delivery_events=True,
    deduplicates_by_key=True,
    max_batch=MAX_BATCH_EMAILS,
    max_request_bytes=40 * 1024 * 1024,
    batch_attachments=False,
)


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
    # Later fields: absent when empty, so older messages keep the exact same payload.
    if message.cc:
        body["cc"] = message.cc
    if message.bcc:
        body["bcc"] = message.bcc
    if message.headers:
        body["headers"] = message.headers
    if message.attachments:
        body["attachments"] = [
            {k: v for k, v in asdict(a).items() if v is not None} for a in message.attachments
        ]
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


class ResendTransport:
    """Resend's HTTP API through one shared `httpx.AsyncClient` (async, never blocks)."""

    name = "resend"
    capabilities = CAPABILITIES

    def __init__(self, client: httpx.AsyncClient, api_key: str, pacer: Pacer | None = None) -> None:
        self._client = client
        self._api_key = api_key
        self._pacer = pacer

    async def send(self, message: EmailMessage, idempotency_key: str) -> SentEmail:
        response = await self._post("/emails", resend_payload(message), idempotency_key)
        if 200 <= response.status_code < 300:
            message_id = _json_field(response, "id")
            if message_id:
                return SentEmail(provider_message_id=message_id, http_status=response.status_code)
            raise ProviderFailure(
                errors.PROVIDER_UNAVAILABLE,
                f"HTTP {response.status_code} from the provider without an email id",
                http_status=response.status_code,
            )
        raise self._classify(response)

    async def send_batch(self, messages: list[EmailMessage], idempotency_key: str) -> SentBatch:
        response = await self._post(
            "/emails/batch",
            [resend_payload(message) for message in messages],
            idempotency_key,
            {"x-batch-validation": BATCH_VALIDATION},
        )
        if not 200 <= response.status_code < 300:
            raise self._classify(response)
        items = _batch_items(response, len(messages))
        if items is None:
            # Accepted, but we cannot tell which id is whose: the retry (same key) is
            # answered the same way, so this ends as an unknown outcome, never a resend.
            raise ProviderFailure(
                errors.PROVIDER_UNAVAILABLE,
                f"HTTP {response.status_code} from the provider without one id per email "
                f"of {len(messages)}",
                http_status=response.status_code,
            )
        return SentBatch(items, response.status_code)

    async def _post(
        self,
        path: str,
        body: Any,
        idempotency_key: str,
        extra_headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """One provider request (one rate-limit token), paced; network failures classified."""
        await self._take_turn()
        headers = {
            "Authorization": f"Bearer {self._api_key}",
            "Idempotency-Key": idempotency_key,
            "User-Agent": "durable-mail/0.1",
            **(extra_headers or {}),
        }
        try:
            response = await self._client.post(path, json=body, headers=headers)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            # No connection was made (refused, DNS failure, TLS handshake): nothing was sent.
            raise ProviderFailure(
                errors.PROVIDER_UNREACHABLE,
                f"could not connect to the provider ({type(exc).__name__})",
            ) from None
        except httpx.TimeoutException as exc:
            # Outcome unknown: Resend may have accepted it. The retry reuses the key.
            raise ProviderFailure(
                errors.NETWORK_ERROR, f"timed out waiting for the provider ({type(exc).__name__})"
            ) from None
        except httpx.TransportError as exc:
            raise ProviderFailure(
                errors.NETWORK_ERROR, f"could not reach the provider ({type(exc).__name__})"
            ) from None
        if self._pacer is not None:
            # Every answer says what the account may do next: pace the next call to it.
            self._pacer.observe(response.headers)
        return response

    async def _take_turn(self) -> None:
        """This call's turn at the provider's rate (at once without a pacer); given up
        (nothing sent) when it would come too late for the attempt to be answered within its
        timeout: a call made after the server timed the attempt out is a request spent for
        nothing (at 10,000 invites, 918 of 1,083 single-send attempts waited ~35 s here and
        were retried anyway)."""
        if self._pacer is None:
            return
        timeout = self._client.timeout.read or DEFAULT_REQUEST_SECONDS
        try:
            await self._pacer.wait(attempt_deadline(margin=timeout + 1.0))
        except TurnTooLate:
            raise ProviderFailure(
                errors.TURN_TOO_LATE,
                "not sent: the attempt's turn at the provider's rate came too late for its "
                "timeout; the provider was not called",
            ) from None

    def _classify(self, response: httpx.Response) -> ProviderFailure:
        status = response.status_code
        name = _json_field(response, "name") or ""
        detail = _json_field(response, "message") or response.reason_phrase
        # Resend's error names are a fixed vocabulary of codes; anything else is not shown.
        code = f" {name}" if _ERROR_CODE.fullmatch(name) else ""
        text = f"HTTP {status}{code} from the provider"
        retry_after = _parse_seconds(response.headers.get("retry-after")) or _parse_seconds(
            response.headers.get("ratelimit-reset")
        )

        def failure(error_type: str) -> ProviderFailure:
            return ProviderFailure(
                error_type,
                text,
                http_status=status,
                provider_error=name or None,
                provider_message=self._redact(detail)[:MAX_ERROR_MESSAGE],
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


def _batch_items(response: httpx.Response, count: int) -> list[BatchItemOutcome] | None:
    """Each email's outcome from `{"data": [{"id"}...], "errors": [{"index", "message"}]}`.

    `data` holds the ids of the emails sent, in request order (the refused ones left out;
    an answer with one entry per email is read by position too). None if it does not fit.
    """
    try:
        body = response.json()
        data = body["data"]
        ids = [str(entry["id"]) for entry in data]
        refused = {
            int(error["index"]): str(error.get("message") or "refused by the provider")
            for error in body.get("errors") or []
        }
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    if any(not 0 <= index < count for index in refused):
        return None
    sent = [index for index in range(count) if index not in refused]
    if len(ids) == count:
        by_index = dict(enumerate(ids))
    elif len(ids) == len(sent):
        by_index = dict(zip(sent, ids, strict=True))
    else:
        return None
    return [
        BatchItemOutcome(refusal=refused[index][:MAX_ERROR_MESSAGE])
        if index in refused
        else BatchItemOutcome(provider_message_id=by_index[index])
        for index in range(count)
    ]
