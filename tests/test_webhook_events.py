"""Resend's webhook events API with the Python SDK against the real stack: an endpoint's
events listed newest first, one read with its payload, its attempts (failures included),
a replay sending it once more with the same svix-id; another tenant gets 404."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import resend
import resend.exceptions
from temporalio.client import Client

from activities.app_webhook_types import delivery_workflow_id
from testkit.app_endpoint import app_endpoint
from testkit.keys import ACME_KEY, GLOBEX_KEY
from testkit.polling import eventually
from tests.conftest import Tenants
from tests.helpers import readable_text
from tests.test_app_webhooks import (
    as_tenant,
    send,
    served,
    settings,
    wait_accepted,
)
from tests.test_resend_compat import needs_node_sdk, run_node

__all__ = ["served", "settings"]


async def test_sdk_lists_reads_and_replays_an_endpoints_events(
    served: str, client: Client, tenants: Tenants
) -> None:
    with app_endpoint() as hook:
        made = await as_tenant(
            ACME_KEY, resend.Webhooks.create, {"endpoint": hook.url, "events": ["email.sent"]}
        )
        webhook_id = made["id"]
        hook.fail_first = 2  # two refused tries before the first 200
        first = await send("ann@example.com")
        await wait_accepted(hook, 1)
        second = await send("bob@example.com")
        await wait_accepted(hook, 2)

        async def both() -> Any:
            page = await as_tenant(ACME_KEY, resend.Webhooks.list_events, webhook_id)
            done = [e for e in page["data"] if e["status"] == "success"]
            return page if len(done) == 2 else None

        page = await eventually(both, timeout=60, what="2 events listed as success")
        assert page["object"] == "list" and page["has_more"] is False
        newest, oldest = page["data"]
        assert newest["type"] == oldest["type"] == "email.sent"
        svix_ids = [r.headers["svix-id"] for r in hook.accepted()]
        assert [oldest["id"], newest["id"]] == svix_ids  # the ids the endpoint got
        one = await as_tenant(ACME_KEY, resend.Webhooks.list_events, webhook_id, {"limit": 1})
        assert one["has_more"] is True and one["data"][0]["id"] == newest["id"]
        rest = await as_tenant(
            ACME_KEY, resend.Webhooks.list_events, webhook_id, {"limit": 1, "after": newest["id"]}
        )
        assert rest["data"][0]["id"] == oldest["id"] and rest["has_more"] is False

        got = await as_tenant(ACME_KEY, resend.Webhooks.get_event, webhook_id, oldest["id"])
        assert got["object"] == "webhook_event" and got["status"] == "success"
        payload: dict[str, Any] = dict(got["payload"]["data"])
        assert payload["email_id"] == first and payload["to"] == ["ann@example.com"]
        tries = await as_tenant(
            ACME_KEY, resend.Webhooks.list_event_attempts, webhook_id, oldest["id"]
        )
        codes = [t["http_status_code"] for t in tries["data"]]
        assert codes == [200, 500, 500]  # newest first
        assert second != first

        replayed = await as_tenant(ACME_KEY, resend.Webhooks.replay_event, webhook_id, oldest["id"])
        assert (replayed["object"], replayed["id"]) == ("webhook_event", oldest["id"])
        again = (await wait_accepted(hook, 3))[2]
        assert again.headers["svix-id"] == oldest["id"]  # the same event, once more

        async def four_tries() -> Any:
            answer = await as_tenant(
                ACME_KEY, resend.Webhooks.list_event_attempts, webhook_id, oldest["id"]
            )
            return answer if len(answer["data"]) == 4 else None

        await eventually(four_tries, timeout=30, what="the replay's try listed")

        # The memo that lists them holds recipients: encrypted, as every payload.
        handle = client.get_workflow_handle(delivery_workflow_id(tenants.acme, first))
        clear = "\n".join(readable_text((await handle.fetch_history()).to_json_dict()))
        assert "ann@example.com" not in clear and oldest["id"] not in clear

        # Async too.
        resend.api_key = ACME_KEY
        listed = await resend.Webhooks.list_events_async(webhook_id)
        assert {e["id"] for e in listed["data"]} == {newest["id"], oldest["id"]}

        # Another tenant: the same 404 as unknown ids.
        calls: list[tuple[Callable[..., Any], tuple[str, ...]]] = [
            (resend.Webhooks.list_events, (webhook_id,)),
            (resend.Webhooks.get_event, (webhook_id, oldest["id"])),
            (resend.Webhooks.list_event_attempts, (webhook_id, oldest["id"])),
            (resend.Webhooks.replay_event, (webhook_id, oldest["id"])),
        ]
        for call, args in calls:
            with pytest.raises(resend.exceptions.ResendError) as hidden:
                await as_tenant(GLOBEX_KEY, call, *args)
            assert (hidden.value.code, hidden.value.error_type) == (404, "not_found")
        with pytest.raises(resend.exceptions.ResendError) as unknown:
            await as_tenant(ACME_KEY, resend.Webhooks.get_event, webhook_id, "msg_nope")
        assert unknown.value.code == 404


@needs_node_sdk
async def test_node_sdk_manages_an_endpoint_and_its_events(served: str) -> None:
    async def node(mode: str, **env: str) -> Any:
        return await run_node("webhooks_manage.cjs", served, ACME_KEY, MODE=mode, **env)

    with app_endpoint() as hook:
        created = (await node("create", ENDPOINT=hook.url))["created"]["data"]
        webhook_id = created["id"]
        await send("ann@example.com")
        sent = (await wait_accepted(hook, 1))[0]

        async def listed_success() -> Any:
            page = await as_tenant(ACME_KEY, resend.Webhooks.list_events, webhook_id)
            return page if page["data"] and page["data"][0]["status"] == "success" else None

        await eventually(listed_success, timeout=30, what="the event listed as delivered")
        answers = await node("manage", WEBHOOK_ID=webhook_id)
        event_id = sent.headers["svix-id"]
        assert [e["id"] for e in answers["listed"]["data"]["data"]] == [event_id]
        got = answers["got"]["data"]
        assert (got["object"], got["id"], got["status"]) == ("webhook_event", event_id, "success")
        assert got["payload"]["type"] == "email.sent"
        assert [a["http_status_code"] for a in answers["attempts"]["data"]["data"]] == [200]
        assert answers["replayed"]["data"] == {"object": "webhook_event", "id": event_id}
        assert answers["updated"]["error"] is None
        after = answers["afterUpdate"]["data"]
        assert after["status"] == "disabled" and after["events"] == [
            "email.sent",
            "email.delivered",
        ]
        rotated = answers["rotated"]["data"]["signing_secret"]
        assert rotated.startswith("whsec_") and rotated != created["signing_secret"]
        assert answers["removed"]["data"]["deleted"] is True
        assert answers["gone"]["error"]["name"] == "not_found"
