"""Resend's batch suppression calls (`resend.Suppressions.Batch.add/remove`, Node's
`suppressions.batch.add/remove`) and `/v1/suppressions/batch/*`, per tenant: 1 to 100
addresses in one update of the tenant's list, all or none against its 2,000 cap.

The real stack of tests/test_resend_compat.py (dev server, worker, API, fake Resend).
"""

from __future__ import annotations

import httpx
import pytest
import resend
import resend.exceptions
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from activities.suppressions import MAX_SUPPRESSIONS, list_workflow_id
from testkit.keys import ACME_KEY, GLOBEX_KEY
from tests.test_resend_compat import (
    Stack,
    call,
    deliveries_of,
    needs_node_sdk,
    run_node,
    stack,  # noqa: F401  (the module's stack)
    wait_last_event,
)
from tests.test_suppressions import acme, address, send_to  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("acme")


def listed(page: resend.Suppressions.ListResponse) -> set[str]:
    return {entry["email"] for entry in page["data"]}


async def test_sdk_batch_add_then_remove_by_emails_and_by_ids(
    acme: Stack,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, b, c, d = (address() for _ in range(4))
    added = await call(resend.Suppressions.Batch.add, {"emails": [a, b, c.upper()]})
    ids = [entry["id"] for entry in added["data"]]
    assert [e["object"] for e in added["data"]] == ["suppression"] * 3 and len(set(ids)) == 3
    # Listed already: its entry, in the order given.
    again = await call(resend.Suppressions.Batch.add, {"emails": [d, a]})
    assert again["data"][1]["id"] == ids[0] and again["data"][0]["id"] not in ids
    assert {a, b, c, d} <= listed(await call(resend.Suppressions.list, {"limit": 100}))

    held = await send_to(b)
    await wait_last_event(held, "suppressed")
    assert deliveries_of(acme.fake, held) == []

    # Another tenant removes nothing of ours (its list does not have them).
    monkeypatch.setattr(resend, "api_key", GLOBEX_KEY)
    theirs = await call(resend.Suppressions.Batch.remove, {"emails": [a, b]})
    assert theirs["data"] == []
    monkeypatch.setattr(resend, "api_key", ACME_KEY)

    by_emails = await call(
        resend.Suppressions.Batch.remove, {"emails": [a, "nobody-listed@example.com"]}
    )
    assert [(e["id"], e["deleted"]) for e in by_emails["data"]] == [(ids[0], True)]
    by_ids = await call(resend.Suppressions.Batch.remove, {"ids": [ids[1], ids[2]]})
    assert [e["id"] for e in by_ids["data"]] == [ids[1], ids[2]]
    left = listed(await call(resend.Suppressions.list, {"limit": 100}))
    assert {a, b, c} & left == set() and d in left

    sent = await send_to(b)
    await wait_last_event(sent, "sent", "delivered")
    assert len(deliveries_of(acme.fake, sent)) == 1


async def test_batch_bodies_are_checked_before_anything_changes(acme: Stack) -> None:  # noqa: F811
    bodies: list[dict[str, list[str]]] = [{"emails": []}, {"emails": [address()] * 101}]
    for body in bodies:
        with pytest.raises(resend.exceptions.ValidationError):
            await call(resend.Suppressions.Batch.add, body)
    with pytest.raises(resend.exceptions.ValidationError):
        await call(resend.Suppressions.Batch.add, {"emails": [address(), "not-an-address"]})
    async with httpx.AsyncClient(base_url=acme.url, timeout=10) as http:
        both = await http.post(
            "/suppressions/batch/remove",
            json={"emails": [address()], "ids": ["sup_x"]},
            headers={"Authorization": f"Bearer {ACME_KEY}"},
        )
        assert both.status_code == 422 and both.json()["name"] == "validation_error"


async def test_v1_batch_fills_the_list_to_its_cap_then_refuses_all_or_none(
    acme: Stack,  # noqa: F811
) -> None:
    # Globex's list (the other tests use Acme's): filled to the cap 100 at a time.
    as_globex = {"Authorization": f"Bearer {GLOBEX_KEY}"}
    chunks = [[address() for _ in range(100)] for _ in range(MAX_SUPPRESSIONS // 100)]
    async with httpx.AsyncClient(base_url=acme.url, timeout=30) as http:
        for chunk in chunks:
            added = await http.post(
                "/v1/suppressions/batch/add", json={"emails": chunk}, headers=as_globex
            )
            assert added.status_code == 200, added.text
            assert [e["email"] for e in added.json()["items"]] == chunk
        one_listed_one_new = {"emails": [chunks[0][0], address()]}
        full = await http.post(
            "/v1/suppressions/batch/add", json=one_listed_one_new, headers=as_globex
        )
        assert full.status_code == 400 and "2000" in full.json()["detail"], full.text
        # All or none: the listed one is answered only when nothing new is asked.
        listed_only = {"emails": [chunks[0][0]]}
        again = await http.post("/v1/suppressions/batch/add", json=listed_only, headers=as_globex)
        assert again.status_code == 200 and again.json()["items"][0]["email"] == chunks[0][0]
        for chunk in chunks:
            removed = await http.post(
                "/v1/suppressions/batch/remove", json={"emails": chunk}, headers=as_globex
            )
            assert removed.status_code == 200 and len(removed.json()["items"]) == 100
        page = await http.get("/v1/suppressions", headers=as_globex)
        assert page.json()["items"] == []


@needs_node_sdk
async def test_node_sdk_batch_add_and_remove(acme: Stack) -> None:  # noqa: F811
    emails = [address() for _ in range(3)]
    answers = await run_node(
        "suppressions_batch.cjs", acme.url, ACME_KEY, ADDRESSES=",".join(emails)
    )
    assert answers["added"]["error"] is None and len(answers["added"]["data"]["data"]) == 3
    assert [e["deleted"] for e in answers["byEmails"]["data"]["data"]] == [True]
    assert len(answers["byIds"]["data"]["data"]) == 2
    assert not set(emails) & {e["email"] for e in answers["listed"]["data"]["data"]}
    assert answers["empty"]["error"]["name"] == "validation_error"


async def updates_of(client: Client, tenant_id: str) -> int:
    """How many updates the tenant's list has taken (its history's update events)."""
    history = await client.get_workflow_handle(list_workflow_id(tenant_id)).fetch_history()
    return sum(
        1
        for e in history.events
        if e.HasField("workflow_execution_update_accepted_event_attributes")
    )


async def test_a_batch_is_one_update_of_the_list_and_async_calls_work(
    acme: Stack,  # noqa: F811
    temporal_env: WorkflowEnvironment,
) -> None:
    emails = [address() for _ in range(4)]
    await call(resend.Suppressions.add, {"email": emails[0]})  # the list exists
    before = await updates_of(temporal_env.client, acme.acme)
    added = await resend.Suppressions.Batch.add_async({"emails": emails})
    assert len(added["data"]) == 4
    assert await updates_of(temporal_env.client, acme.acme) == before + 1
    removed = await resend.Suppressions.Batch.remove_async({"emails": emails})
    assert [e["deleted"] for e in removed["data"]] == [True] * 4
    assert await updates_of(temporal_env.client, acme.acme) == before + 2
