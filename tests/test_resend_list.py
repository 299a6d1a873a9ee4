"""`GET /emails` driven by Resend's SDKs (`resend.Emails.list`, Node's `resend.emails.list`):
cursor pages newest first, `has_more`, one tenant's emails only.

The real stack of tests/test_resend_compat.py (its module-scoped `stack` fixture, so this
module gets tenants of its own): dev server, worker, API under uvicorn, fake Resend.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
import resend
import resend.exceptions

from testkit.keys import ACME_KEY, GLOBEX_KEY
from testkit.polling import eventually
from tests.test_resend_compat import (
    SENDER,
    Stack,
    call,
    email,
    in_future,
    needs_node_sdk,
    run_node,
    stack,  # noqa: F401  (the module's stack)
)

ACME_SENDER = SENDER


@pytest.fixture
def acme(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:  # noqa: F811
    """The SDK as tenant acme's app uses it: our base URL, its key."""
    monkeypatch.setattr(resend, "api_url", stack.url)
    monkeypatch.setattr(resend, "api_key", ACME_KEY)
    yield stack


async def listed(params: dict[str, Any]) -> dict[str, Any]:
    page: dict[str, Any] = dict(await call(resend.Emails.list, params))
    return page


async def send_five() -> list[str]:
    """Five emails, oldest first; the middle one scheduled (its workflow stays open, which
    visibility lists before every closed one)."""
    ids = []
    for n in range(5):
        extra = {"scheduled_at": in_future(hours=1)} if n == 2 else {}
        ids.append((await call(resend.Emails.send, email(**extra)))["id"])
    return ids


async def all_listed(count: int) -> list[str]:
    """The ids of the caller's emails once visibility shows `count` of them."""

    async def shown() -> list[str] | None:
        page = await listed({"limit": 100})
        ids = [e["id"] for e in page["data"]]
        return ids if len(ids) == count else None

    found: list[str] = await eventually(shown, timeout=20, what=f"{count} emails listed")
    return found


async def test_sdk_lists_pages_newest_first_with_cursors_both_ways(acme: Stack) -> None:
    sent = await send_five()
    newest_first = list(reversed(sent))
    assert await all_listed(5) == newest_first

    first = await listed({"limit": 2})
    assert first["object"] == "list" and first["has_more"] is True
    assert [e["id"] for e in first["data"]] == newest_first[:2]
    second = await listed({"limit": 2, "after": newest_first[1]})
    assert [e["id"] for e in second["data"]] == newest_first[2:4] and second["has_more"]
    third = await listed({"limit": 2, "after": newest_first[3]})
    assert [e["id"] for e in third["data"]] == newest_first[4:] and not third["has_more"]
    back = await listed({"limit": 2, "before": newest_first[3]})
    assert [e["id"] for e in back["data"]] == newest_first[1:3] and back["has_more"]
    top = await listed({"limit": 2, "before": newest_first[1]})
    assert [e["id"] for e in top["data"]] == newest_first[:1] and not top["has_more"]

    # Each email as GET /emails/{id} gives it, without its bodies.
    scheduled = second["data"][0]
    got = dict(await call(resend.Emails.get, sent[2]))
    assert scheduled["id"] == sent[2] and scheduled["last_event"] == "scheduled"
    for field in ("from", "to", "subject", "scheduled_at", "last_event"):
        assert scheduled[field] == got[field], field
    # Accepted by the API, then first run by the worker: the same moment, give or take.
    gap = datetime.fromisoformat(str(got["created_at"])) - datetime.fromisoformat(
        scheduled["created_at"]
    )
    assert abs(gap.total_seconds()) < 2
    assert "html" not in scheduled
    await call(resend.Emails.cancel, sent[2])


async def test_another_tenant_lists_none_and_cannot_use_a_cursor(
    acme: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    acme_id = (await call(resend.Emails.send, email()))["id"]
    await eventually(lambda: _shows(acme_id), timeout=20, what="acme's email listed for acme")
    monkeypatch.setattr(resend, "api_key", GLOBEX_KEY)
    page = await listed({"limit": 100})
    assert page["data"] == [] and page["has_more"] is False
    with pytest.raises(resend.exceptions.ResendError) as raised:
        await listed({"after": acme_id})
    assert raised.value.code == 400 and "cursor" in raised.value.message


async def _shows(email_id: str) -> bool | None:
    page = await listed({"limit": 100})
    return True if any(e["id"] == email_id for e in page["data"]) else None


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 101}, {"limit": "x"}])
async def test_sdk_limit_outside_1_to_100_is_a_validation_error(
    acme: Stack, params: dict[str, Any]
) -> None:
    with pytest.raises(resend.exceptions.ValidationError) as raised:
        await listed(params)
    assert "limit" in raised.value.message


@needs_node_sdk
async def test_node_sdk_lists_pages(acme: Stack) -> None:
    sent = [(await call(resend.Emails.send, email()))["id"] for _ in range(3)]
    await eventually(lambda: _shows(sent[0]), timeout=20, what="the oldest email listed")
    answers = await run_node("list.cjs", acme.url, ACME_KEY, LIMIT="2")
    first, following = answers["first"]["data"], answers["next"]["data"]
    assert first["object"] == "list" and first["has_more"] is True
    assert [e["id"] for e in first["data"]] == [sent[2], sent[1]]
    assert following["data"][0]["id"] == sent[0]
    assert answers["bad"]["data"] is None
    assert answers["bad"]["error"]["name"] == "validation_error"
