"""What POST /emails and POST /emails/batch accept, checked as Resend checks them (the same
error names and codes)."""

from __future__ import annotations

import json
import re
from email.utils import parseaddr
from typing import Any, Final

from testkit.fake_resend.errors import ApiError

MAX_RECIPIENTS: Final = 50
MAX_BATCH: Final = 100
BATCH_VALIDATION_MODES: Final = ("strict", "permissive")
MAX_IDEMPOTENCY_KEY_LENGTH: Final = 256

_ADDRESS = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")
_TAG_PART = re.compile(r"^[A-Za-z0-9_-]{1,256}$")


def as_list(value: str | list[str]) -> list[str]:
    """A field that takes one address or a list of them, as a list."""
    return [value] if isinstance(value, str) else list(value)


def _check_address(field_name: str, value: str) -> None:
    if not _ADDRESS.match(parseaddr(value)[1]):
        raise ApiError(
            422,
            "validation_error",
            f"Invalid `{field_name}` field. The email address needs to follow the "
            "`email@example.com` or `Name <email@example.com>` format.",
        )


def _check_addresses(field_name: str, value: object, *, required: bool = False) -> None:
    if value is None:
        if required:
            raise ApiError(422, "missing_required_field", f"Missing `{field_name}` field.")
        return
    if not isinstance(value, str | list) or not all(isinstance(v, str) for v in as_list(value)):
        raise ApiError(
            422, "validation_error", f"`{field_name}` must be a string or a list of strings."
        )
    addresses = as_list(value)
    if required and not addresses:
        raise ApiError(422, "missing_required_field", f"Missing `{field_name}` field.")
    if len(addresses) > MAX_RECIPIENTS:
        raise ApiError(
            422,
            "validation_error",
            f"Too many recipients in `{field_name}`: at most {MAX_RECIPIENTS} are allowed.",
        )
    for address in addresses:
        _check_address(field_name, address)


def _check_tags(tags: object) -> None:
    message = (
        "`tags` must be a list of {name, value} objects; names and values may only contain "
        "ASCII letters, numbers, underscores or dashes, at most 256 characters."
    )
    if not isinstance(tags, list):
        raise ApiError(422, "validation_error", message)
    for tag in tags:
        if not isinstance(tag, dict) or set(tag) - {"name", "value"}:
            raise ApiError(422, "validation_error", message)
        for part in (tag.get("name"), tag.get("value", "")):
            if not isinstance(part, str) or (part and not _TAG_PART.match(part)):
                raise ApiError(422, "validation_error", message)
        if not tag.get("name"):
            raise ApiError(422, "validation_error", message)


def _check_optional_fields(payload: dict[str, Any]) -> None:
    for name in ("cc", "bcc", "reply_to"):
        _check_addresses(name, payload.get(name))
    headers = payload.get("headers")
    if headers is not None and (
        not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values())
    ):
        raise ApiError(422, "validation_error", "`headers` must be an object of strings.")
    if payload.get("tags") is not None:
        _check_tags(payload["tags"])
    attachments = payload.get("attachments")
    if attachments is not None and (
        not isinstance(attachments, list)
        or not all(isinstance(a, dict) and ("content" in a or "path" in a) for a in attachments)
    ):
        raise ApiError(422, "invalid_attachment", "Each attachment needs a `content` or a `path`.")
    scheduled_at = payload.get("scheduled_at")
    if scheduled_at is not None and not isinstance(scheduled_at, str):
        raise ApiError(422, "validation_error", "`scheduled_at` must be a string.")


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ApiError(400, "validation_error", "The request body is not valid JSON.") from None


def parse_email(body: bytes) -> dict[str, Any]:
    """The JSON body of a send, or the ApiError Resend would answer to it."""
    return check_email(_json(body))


def parse_batch(body: bytes) -> list[Any]:
    """The JSON array of a batch send (1 to 100 items, each checked by `check_email`)."""
    payload = _json(body)
    if not isinstance(payload, list) or not 1 <= len(payload) <= MAX_BATCH:
        message = f"The request body must be an array of 1 to {MAX_BATCH} emails."
        raise ApiError(422, "validation_error", message)
    return payload


def check_batch_item(item: Any) -> dict[str, Any]:
    """One email of a batch (batch emails carry no attachments: Resend's batch endpoint does
    not support them)."""
    payload = check_email(item)
    if payload.get("attachments") is not None:
        raise ApiError(422, "validation_error", "Attachments are not supported in batch sending.")
    return payload


def check_email(payload: Any) -> dict[str, Any]:
    """One email as a JSON value, or the ApiError Resend would answer to it."""
    if not isinstance(payload, dict):
        raise ApiError(422, "validation_error", "The request body must be a JSON object.")
    sender = payload.get("from")
    if sender is None or sender == "":
        raise ApiError(422, "missing_required_field", "Missing `from` field.")
    if not isinstance(sender, str):
        raise ApiError(422, "validation_error", "`from` must be a string.")
    _check_address("from", sender)
    _check_addresses("to", payload.get("to"), required=True)
    subject = payload.get("subject")
    if subject is None:
        raise ApiError(422, "missing_required_field", "Missing `subject` field.")
    if not isinstance(subject, str):
        raise ApiError(422, "validation_error", "`subject` must be a string.")
    html, text = payload.get("html"), payload.get("text")
    if html is None and text is None:
        raise ApiError(422, "missing_required_field", "Missing `html` or `text` field.")
    if not isinstance(html, str | None) or not isinstance(text, str | None):
        raise ApiError(422, "validation_error", "`html` and `text` must be strings.")
    _check_optional_fields(payload)
    return payload


def check_idempotency_key(key: str | None) -> None:
    if key is not None and not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY_LENGTH:
        raise ApiError(400, "invalid_idempotency_key")
