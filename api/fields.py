"""What a field of a request may hold: the checks every request model shares (one line,
a sender, a send time, a link), as annotated types; pydantic stays at this edge."""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime, timedelta
from email.errors import HeaderParseError
from email.header import decode_header, make_header
from typing import Annotated, Any
from urllib.parse import urlsplit

from email_validator import EmailNotValidError, validate_email
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    EmailStr,
    Field,
)

from activities.templating import LOCALE_TAG

# Resend's own cap on recipients per email.
MAX_RECIPIENTS = 50
MAX_BODY_CHARS = 256_000
# html + text together, in UTF-8. The message is recorded in the workflow input (once per
# run), so it stays far below Temporal's 2 MB payload limit; JSON escapes non-ASCII, so the
# largest (4-byte characters) takes ~393 KB there. Gmail clips HTML past ~100 KB.
MAX_CONTENT_BYTES = 128 * 1024
# Unicode's own line breaks (NEL, LINE and PARAGRAPH SEPARATOR) beside CR and LF: Python's
# email package, and other mail software, split header lines on them too.
_LINE_BREAK_CATEGORIES = frozenset({"Cc", "Zl", "Zp"})


def _is_control(ch: str) -> bool:
    """A control character or a line/paragraph separator (a tab is allowed in headers)."""
    return ch != "\t" and unicodedata.category(ch) in _LINE_BREAK_CATEGORIES


def _no_line_breaks(value: Any) -> Any:
    # Checked before whitespace stripping: a line break or another control character
    # anywhere in a header value is refused, even trailing (U+0085 and U+2028 are
    # whitespace to `str.strip`), so header injection never depends on what a later step
    # strips.
    if isinstance(value, str) and any(_is_control(ch) for ch in value):
        raise ValueError(
            "must not contain line breaks (CR, LF, U+0085, U+2028, U+2029) or other control "
            "characters (header injection)"
        )
    return value


MAX_SCHEDULE_AHEAD = timedelta(days=30)


def _single_line(value: str) -> str:
    if any(_is_control(ch) for ch in value):
        raise ValueError("must be a single line without control characters")
    return value


def _sender(value: str) -> str:
    """`addr` or `Name <addr>` in its one canonical form: the domain as IDNA ASCII, lower
    case (`acme。com` and `acme．com` are `acme.com`), checked and forwarded as such; a
    display name that reads as an address once decoded is refused."""
    _single_line(value)
    match = _SENDER.fullmatch(value)
    if match is None:
        raise ValueError('must be one address or "Name <address@domain>"')
    address = match["address"] or match["bare"]
    try:
        valid = validate_email(address, check_deliverability=False)
    except EmailNotValidError as err:
        raise ValueError(f"invalid sender address: {err}") from None
    canonical = f"{valid.local_part}@{valid.ascii_domain.lower()}"
    if match["bare"]:
        return canonical
    name = match["name"].strip()
    if _poses_as_address(name):
        raise ValueError("the display name must not contain an address (@), even encoded")
    return f"{name} <{canonical}>" if name else canonical


def _poses_as_address(name: str) -> bool:
    """Whether a display name shows an `@` once decoded (RFC 2047) and normalised (NFKC:
    `＠` and `﹫` are `@`), which a mail client would show as the sender."""
    try:
        decoded = str(make_header(decode_header(name)))
    except (HeaderParseError, LookupError, UnicodeDecodeError, ValueError):
        return True  # an encoded word we cannot read is not shown as a name
    return any("@" in unicodedata.normalize("NFKC", text) for text in (name, decoded))


# `address` or `Display Name <address>`: one address, no quoting, no lists.
_SENDER = re.compile(r"(?P<name>[^<>\"@,;]*)<(?P<address>[^<>\s,;]+)>|(?P<bare>[^<>\s,;\"]+)")
NoLineBreaks = BeforeValidator(_no_line_breaks)


def _send_at(value: datetime) -> datetime:
    # "Must be in the future" is checked by the service, after a repeat of an accepted
    # request (same Idempotency-Key) has been answered as it was: the clock moves on.
    if value.tzinfo is None:
        raise ValueError("must include a timezone, e.g. 2030-01-01T09:00:00Z")
    now = datetime.now(UTC)
    if value > now + MAX_SCHEDULE_AHEAD:
        raise ValueError("must be at most 30 days ahead")
    return value.astimezone(UTC)


SingleLine = Annotated[str, NoLineBreaks, AfterValidator(_single_line)]
Name = Annotated[SingleLine, Field(min_length=1, max_length=200)]
Sender = Annotated[str, NoLineBreaks, Field(max_length=320), AfterValidator(_sender)]
Address = Annotated[EmailStr, NoLineBreaks]
Recipients = Address | Annotated[list[Address], Field(min_length=1, max_length=MAX_RECIPIENTS)]
TenantId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
SendAt = Annotated[
    datetime,
    AfterValidator(_send_at),
    Field(description="Send later (ISO 8601 with timezone, in the future, up to 30 days ahead)."),
]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
# Characters a browser and our parser could read differently, or that break out of markup.
_URL_UNSAFE = re.compile(r"[^\x21-\x7e]|[\\<>\"'`{}|^]")


def link_shape_problem(value: str) -> str | None:
    """Why `value` is not a link we put in an email, by its shape alone (None: it is one);
    hosts and ports a tenant allows are `api.links`'s question."""
    if _URL_UNSAFE.search(value):
        return "must be plain ASCII without spaces, quotes, backslashes or <>{}|^`"
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return "must be an absolute https:// URL"
    if "@" in parts.netloc:
        return "must not carry a user name or password"
    if parts.scheme == "http" and parts.hostname not in LOOPBACK_HOSTS:
        return "must use https (http only for localhost)"
    try:
        port = parts.port
    except ValueError:
        return "must have a valid port (1-65535) or none"
    if port == 0 or parts.netloc.endswith(":"):
        return "must have a valid port (1-65535) or none"
    return None


def _accept_url(value: str) -> str:
    if problem := link_shape_problem(value):
        raise ValueError(problem)
    return value


AcceptUrl = Annotated[
    str,
    NoLineBreaks,
    Field(min_length=1, max_length=2048),
    AfterValidator(_accept_url),
    Field(
        description="The app's own accept link (with its own token), sent verbatim. Its "
        "host must be one the tenant allows (default: APP_BASE_URL's). Without it, we "
        "issue the token and link to {APP_BASE_URL}/invites/accept?invite=&token=."
    ),
]
Locale = Annotated[
    str,
    Field(
        min_length=2,
        max_length=35,
        pattern=f"^{LOCALE_TAG.pattern}$",
        description="en (default), de, fr, es, ja, or a locale of TEMPLATE_DIR; "
        "de-AT falls back to de; one no template has is a 422.",
    ),
]
