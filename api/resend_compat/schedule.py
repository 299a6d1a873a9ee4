"""Natural-language `scheduled_at` ("in 1 hour", "tomorrow at 9am", "friday 10:00 CET"),
read as Resend reads it, by a maintained parser (dateparser), never our own patterns.

A time zone stated in the text wins; otherwise the time is UTC's. Whether the time is
ahead, and at most 30 days so, is the caller's rule (`schemas.schedule_problem`), as for
ISO 8601 times.
"""

from __future__ import annotations

from datetime import UTC, datetime

import dateparser

# English, as Resend documents it; a future date for a bare weekday or time of day.
SETTINGS = {
    "TIMEZONE": "UTC",
    "RETURN_AS_TIMEZONE_AWARE": True,
    "PREFER_DATES_FROM": "future",
}
MAX_TEXT = 100


def natural_time(text: str, now: datetime | None = None) -> datetime | None:
    """The moment `text` names, in UTC; None when it names none (or is a bare number,
    which the parser would read as a day of some month)."""
    text = text.strip()
    if len(text) > MAX_TEXT or not any(ch.isalpha() for ch in text):
        return None
    base = (now or datetime.now(UTC)).astimezone(UTC).replace(tzinfo=None)
    found = dateparser.parse(text, languages=["en"], settings={**SETTINGS, "RELATIVE_BASE": base})
    return found.astimezone(UTC) if found is not None else None
