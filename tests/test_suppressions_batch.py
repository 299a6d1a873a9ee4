"""Resend's `suppressions.batch.add/remove` with both SDKs against the real stack: one
update of the tenant's list per request, Resend's shapes and its 1-100 limit, the list's
2,000 cap answered clearly, and another tenant's list untouched."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest
import resend
import resend.exceptions
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from activities.suppressions import MAX_SUPPRESSIONS, list_workflow_id
from testkit.keys import ACME_KEY, GLOBEX_KEY
from tests.test_resend_compat import Stack, call, needs_node_sdk, run_node
from tests.test_resend_compat import stack as stack  # the module's stack


@pytest.fixture
def acme(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    monkeypatch.setattr(resend, "api_url", stack.url)
    monkeypatch.setattr(resend, "api_key", ACME_KEY)
    yield stack


def addresses(count: int) -> list[str]:
    run = uuid.uuid4().hex[:8]
    return [f"b{i}-{run}@example.com" for i in range(count)]


async def updates_of(client: Client, tenant_id: str) -> int:
    """How many updates the tenant's list has taken (its history's update events)."""
    history = await client.get_workflow_handle(list_workflow_id(tenant_id)).fetch_history()
    return sum(
        1
        for e in history.events
        if e.HasField("workflow_execution_update_accepted_event_attributes")
    )


async def test_python_sdk_batch_adds_and_removes_in_one_update_each(
    acme: Stack, temporal_env: WorkflowEnvironment
) -> None:
    client = temporal_env.client
    first, second, third = addresses(3)
    await call(resend.Suppressions.add, {"email": third})  # the list exists
    before = await updates_of(client, acme.acme)
    added = await call(
        resend.Suppressions.Batch.add, {"emails": [first, second.upper(), first, third]}
    )
    assert [entry["object"] for entry in added["data"]] == ["suppression"] * 3
    assert len({entry["id"] for entry in added["data"]}) == 3  # the same address once
    assert await updates_of(client, acme.acme) == before + 1
    listed = await call(resend.Suppressions.list, {"limit": 100})
    assert {first, second, third} <= {e["email"] for e in listed["data"]}

    # Another tenant's list is untouched, and removing there finds nothing.
    resend.api_key = GLOBEX_KEY
    elsewhere = await call(resend.Suppressions.Batch.remove, {"emails": [first]})
    assert elsewhere["data"] == []
    resend.api_key = ACME_KEY

    third_id = next(e["id"] for e in listed["data"] if e["email"] == third)
    by_id = await call(resend.Suppressions.Batch.remove, {"ids": [third_id, "sup_unknown"]})
    assert by_id["data"] == [{"object": "suppression", "id": third_id, "deleted": True}]
    resend.api_key = ACME_KEY
    removed = await resend.Suppressions.Batch.remove_async({"emails": [first, second]})
    assert {entry["deleted"] for entry in removed["data"]} == {True}
    assert len(removed["data"]) == 2
    with pytest.raises(resend.exceptions.ResendError) as gone:
        await call(resend.Suppressions.get, first)
    assert gone.value.code == 404


async def test_batch_limits_are_answered_in_resends_format(acme: Stack) -> None:
    headers = {"Authorization": f"Bearer {ACME_KEY}"}
    async with httpx.AsyncClient(base_url=acme.url, headers=headers) as http:
        for body in [
            {"emails": []},
            {"emails": addresses(101)},
            {"emails": ["not an address"]},
        ]:
            answer = await http.post("/suppressions/batch/add", json=body)
            assert answer.status_code in (400, 422), body
            assert answer.json()["name"] == "validation_error"
        both = await http.post(
            "/suppressions/batch/remove", json={"emails": addresses(1), "ids": ["sup_x"]}
        )
        assert both.status_code in (400, 422) and "not both" in both.json()["message"]


async def test_the_lists_cap_is_answered_clearly_and_adds_nothing(acme: Stack) -> None:
    headers = {"Authorization": f"Bearer {ACME_KEY}"}
    async with httpx.AsyncClient(base_url=acme.url, headers=headers, timeout=60) as http:
        listed = (await http.get("/suppressions", params={"limit": 100})).json()
        room = MAX_SUPPRESSIONS - len(listed["data"])
        assert listed["has_more"] is False  # a fresh tenant list in this module
        filled = 0
        while filled < room:
            chunk = addresses(min(100, room - filled))
            answer = await http.post("/suppressions/batch/add", json={"emails": chunk})
            assert answer.status_code == 200, answer.text
            filled += len(chunk)
        over = await http.post("/suppressions/batch/add", json={"emails": addresses(2)})
        assert over.status_code == 400
        assert f"at most {MAX_SUPPRESSIONS}" in over.json()["message"]
        # Clean up for the module's other tests: remove what was added, 100 at a time.
        entries = await http.get("/v1/suppressions", params={"limit": 100})
        while entries.json()["items"]:
            ids = [e["id"] for e in entries.json()["items"]]
            await http.post("/suppressions/batch/remove", json={"ids": ids})
            entries = await http.get("/v1/suppressions", params={"limit": 100})


@needs_node_sdk
async def test_node_sdk_batch_adds_and_removes(acme: Stack) -> None:
    first, second = addresses(2)
    answers = await run_node(
        "suppressions_batch.cjs", acme.url, ACME_KEY, FIRST=first, SECOND=second
    )
    added = answers["added"]["data"]["data"]
    assert len(added) == 2 and {a["object"] for a in added} == {"suppression"}
    assert {first, second} <= {e["email"] for e in answers["listed"]["data"]["data"]}
    removed = answers["removed"]["data"]["data"]
    assert len(removed) == 2 and all(r["deleted"] for r in removed)
    assert answers["gone"]["error"]["name"] == "not_found"
