"""App webhook delivery figures (docs/webhooks.md), measured on this machine.

    python -m bench.app_webhooks                 # 200 emails, one endpoint for email.sent
    python -m bench.app_webhooks --emails 500

In one process: a dev server, a worker (both queues), the API in-process, the fake Resend
(no latency, no rate limit to speak of) and an app endpoint on 127.0.0.1. It sends
`--emails` emails at once, each of which emits `email.sent` to the endpoint, and reports how
fast the events arrive (events/s over the burst; latency from the API's answer to the
endpoint's receipt). Then one endpoint fails its first 4 tries of one event under a short
schedule (1, 2, 4, 8 s) and the gaps between tries are measured. Prints markdown.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import uuid

import httpx
from pydantic import SecretStr
from temporalio.client import Client

from activities.app_webhook_types import (
    DELIVERY_WORKFLOW,
    EVENT_SIGNAL,
    AppEvent,
    AppEventSignal,
    AppEventsInput,
    DeliveryPolicyInput,
    delivery_workflow_id,
)
from config import Settings, TenantConfig
from infra.temporal_client import data_converter
from testkit.app_endpoint import Endpoint, app_endpoint
from testkit.dev_server import start_local
from testkit.fake_resend import FakeResend, FakeResendServer
from testkit.in_process import api_and_worker
from testkit.keys import ACME_KEY, CODEC_KEYS, FAKE_KEY
from testkit.polling import eventually

SENDER = "Acme <invites@acme.example>"


def settings_for(target: str, fake_url: str, delays: str) -> Settings:
    suffix = uuid.uuid4().hex[:8]
    return Settings(
        _env_file=None,
        temporal_address=target,
        task_queue=f"wf-{suffix}",
        send_task_queue=f"send-{suffix}",
        resend_api_key=SecretStr(FAKE_KEY),
        resend_api_url=fake_url,
        resend_rate_limit_per_second=1000.0,
        tenants={
            f"acme-{suffix}": TenantConfig(
                api_keys=[SecretStr(ACME_KEY)], sender_domains=["acme.example"]
            )
        },
        payload_codec_keys=SecretStr(CODEC_KEYS),
        worker_set_current=True,
        worker_deployment_name=f"dm-bench-{suffix}",
        webhook_allow_private_urls=True,
        webhook_retry_delays=delays,
    )


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, round(q * len(ordered)) - 1)]


async def burst(api: httpx.AsyncClient, hook: Endpoint, fake: FakeResend, emails: int) -> None:
    answered: dict[str, float] = {}

    async def one(n: int) -> None:
        sent = await api.post(
            "/emails",
            json={"from": SENDER, "to": [f"u{n}@example.com"], "subject": "s", "text": "t"},
        )
        answered[sent.json()["id"]] = time.monotonic()

    started = time.monotonic()
    await asyncio.gather(*(one(n) for n in range(emails)))
    accepted_in = time.monotonic() - started
    await eventually(lambda: len(hook.accepted()) >= emails, timeout=600, what="all events")
    received = hook.accepted()

    latency = [r.at - answered[json.loads(r.body)["data"]["email_id"]] for r in received]
    window = max(r.at for r in received) - started
    print(f"| emails accepted | {emails} in {accepted_in:.2f} s |")
    print(
        f"| `email.sent` events received | {len(received)} in {window:.2f} s: "
        f"**{len(received) / window:.1f} events/s** |"
    )
    print(
        f"| latency API answer -> endpoint | p50 {statistics.median(latency) * 1000:.0f} ms, "
        f"p95 {pct(latency, 0.95) * 1000:.0f} ms, max {max(latency) * 1000:.0f} ms |"
    )
    provider = {d.to[0]: d.received_at for d in fake.deliveries}
    sent_in = max(provider.values()) - started
    after_send = [r.at - provider[json.loads(r.body)["data"]["to"][0]] for r in received]
    print(f"| provider received all sends | within {sent_in:.2f} s |")
    print(
        f"| latency provider accept -> endpoint | p50 {statistics.median(after_send) * 1000:.0f}"
        f" ms, p95 {pct(after_send, 0.95) * 1000:.0f} ms |"
    )
    ids = {r.headers["svix-id"] for r in received}
    print(f"| distinct svix-ids / events | {len(ids)} / {len(received)} |")


async def delivery_only(
    client: Client, settings: Settings, hook: Endpoint, endpoint_id: str, emails: int
) -> None:
    """The delivery half alone: what `emit_app_event` does for `emails` emails at once
    (start each email's delivery workflow with its event), until the endpoint has them."""
    tenant = next(iter(settings.tenants))
    policy = DeliveryPolicyInput(settings.webhook_retry_delay_list, 5.0)
    started = time.monotonic()
    for _ in range(emails):
        email_id = f"em_bench{uuid.uuid4().hex}"
        event = AppEvent(f"msg_{uuid.uuid4().hex}", "email.sent", "now", {"email_id": email_id})
        await client.start_workflow(
            DELIVERY_WORKFLOW,
            AppEventsInput(tenant, email_id, policy),
            id=delivery_workflow_id(tenant, email_id),
            task_queue=settings.task_queue,
            start_signal=EVENT_SIGNAL,
            start_signal_args=[[AppEventSignal(event, [endpoint_id])]],
        )
    before = len(hook.accepted())
    await eventually(lambda: len(hook.accepted()) >= emails, timeout=600, what="deliveries")
    window = max(r.at for r in hook.accepted()) - started
    print(
        f"| delivery half only ({emails} delivery workflows started, {before} done by then) "
        f"| {emails} in {window:.2f} s: **{emails / window:.1f} events/s** |"
    )


async def schedule(api: httpx.AsyncClient, hook: Endpoint) -> None:
    hook.fail_first = 4
    await api.post(
        "/emails", json={"from": SENDER, "to": ["late@example.com"], "subject": "s", "text": "t"}
    )
    await eventually(lambda: hook.accepted(), timeout=60, what="delivered after 4 failures")
    times = [r.at for r in hook.received]
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    print(
        f"| retry gaps, schedule 1, 2, 4, 8 s | "
        f"{', '.join(f'{g:.2f} s' for g in gaps)} ({len(times)} tries, 1 delivered) |"
    )


async def main(emails: int) -> None:
    env = await start_local(
        data_converter(Settings(_env_file=None, payload_codec_keys=SecretStr(CODEC_KEYS)))
    )
    try:
        with FakeResendServer() as fake, app_endpoint() as hook, app_endpoint() as slow:
            target = env.client.service_client.config.target_host
            settings = settings_for(target, fake.url, "1,2,4,8")
            async with api_and_worker(env.client, settings, ACME_KEY) as api:
                made = await api.post(
                    "/v1/webhook-endpoints",
                    json={"endpoint": hook.url, "events": ["email.sent"]},
                )
                assert made.status_code == 200, made.text
                print("| measure | value |\n|---|---|")
                await burst(api, hook, fake.fake, emails)
                await api.delete(f"/v1/webhook-endpoints/{made.json()['id']}")
                with app_endpoint() as alone:
                    only = await api.post(
                        "/v1/webhook-endpoints",
                        json={"endpoint": alone.url, "events": ["email.sent"]},
                    )
                    await delivery_only(env.client, settings, alone, only.json()["id"], emails)
                await api.post(
                    "/v1/webhook-endpoints",
                    json={"endpoint": slow.url, "events": ["email.sent"]},
                )
                await schedule(api, slow)
    finally:
        await env.shutdown()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--emails", type=int, default=200)
    asyncio.run(main(parser.parse_args().emails))
    sys.stdout.flush()
    # The SDK's runtime can crash the interpreter at exit (sdk-python#300): leave directly.
    os._exit(0)
