"""Carry out the bulk and fairness programs of `bench/scenarios.py` (issue 12).

- Bulk: invites as batch requests against the fake limited to the provider's 2 requests/s,
  our worker at the same limit: accept rate, time to deliver every invite, 429s; then the
  server's work per delivered email (history events, workflow tasks) of batch and single sends.
- Fairness: tenant A's single invites queued, then tenant B's single invites one by one: how
  long each of B's waits for the provider, with the server's priority and fairness on and off
  (each on a fresh dev server, so no backlog leaks into another run).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from bench import load
from bench.measure import System, log, percentile
from bench.sampler import Sampler
from bench.scenarios import BulkRun, FairnessProbe, bulk_program, fairness_program
from bench.stack import start_dev_server, start_our_api, start_our_worker
from testkit.dev_server import DYNAMIC_CONFIG, DevServer
from testkit.fake_resend import Delivery
from testkit.polling import ConditionTimeout, eventually
from workflows.ids import public_id_for

if TYPE_CHECKING:  # runners carries these programs out, and holds the run's `Bench`
    from bench.runners import Bench

WORKFLOW_TASK_COMPLETED = EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
HISTORY_SAMPLE = 10


def first_received(deliveries: list[Delivery], tag: str) -> dict[str, list[float]]:
    """When the provider received each of this scenario's recipients (twice: a duplicate)."""
    received: dict[str, list[float]] = {}
    for delivery in deliveries:
        for to in delivery.to:
            if to.startswith(f"{tag}-"):
                received.setdefault(to, []).append(delivery.received_at_wall)
    return received


async def server_work(client: Client, workflow_ids: list[str], emails: int) -> dict[str, float]:
    """History events and workflow tasks per email, over these workflows' histories."""
    events = tasks = 0
    for workflow_id in workflow_ids:
        history = await client.get_workflow_handle(workflow_id).fetch_history()
        events += len(history.events)
        tasks += sum(1 for e in history.events if e.event_type == WORKFLOW_TASK_COMPLETED)
    return {
        "workflows": len(workflow_ids),
        "emails": emails,
        "events_per_email": events / max(emails, 1),
        "workflow_tasks_per_email": tasks / max(emails, 1),
    }


async def all_sent(client: Client, query: str, count: int) -> None:
    """Wait until visibility says `count` workflows of `query` recorded their send."""

    async def done() -> bool:
        return (await client.count_workflows(f"{query} AND EmailStatus='sent'")).count >= count

    await eventually(done, timeout=60, interval=0.5, what=f"{count} sends recorded")


# -- bulk ------------------------------------------------------------------------------------


async def bulk_sends(bench: Bench, client: Client, server: DevServer, system: System) -> None:
    """Our worker restarted at the provider's limit; each bulk run, then server work."""
    plan = bench.plan
    await system.procs["worker"].stop()
    env = bench.our_env(server, rate_limit=plan.bulk_limit)
    system.procs["worker"] = await start_our_worker(client, bench.log_dir, env, "worker_bulk")
    results: list[dict[str, Any]] = []
    batch_ids: list[str] = []
    batch_items = 0
    for run in bulk_program(plan):
        result, workflow_ids = await bulk_run(bench, system, run)
        results.append(result)
        batch_ids, batch_items = workflow_ids[:HISTORY_SAMPLE], run.per_request
    bench.probes["bulk"] = results
    if batch_ids:
        await bench.guarded(
            "server work", lambda: work_per_email(bench, client, system, batch_ids, batch_items)
        )


async def bulk_run(bench: Bench, system: System, run: BulkRun) -> tuple[dict[str, Any], list[str]]:
    if system.settle is not None:
        await system.settle()
    fake = bench.fake.client
    await fake.reset()
    await fake.configure(rate_limit_per_second=run.limit)
    tag = bench.tag("bulk")
    sampler = Sampler({**system.procs, "fake": bench.fake.proc, "loadgen": Sampler.self_process()})
    sampler.start()
    records = await load.batch_invites(
        system.base_url,
        tag,
        count=run.invites,
        per_request=run.per_request,
        concurrency=run.concurrency,
        extra={"tenant_id": tag},
    )
    accepted = [r for r in records if r.accepted]
    invites = sum(r.size for r in accepted)
    # Every batch is one provider call; at the limit they take invites / per_request / limit.
    cap = invites / run.per_request / run.limit * 2 + 60
    try:
        await fake.wait_for_deliveries(invites, timeout=cap, interval=0.5)
    except ConditionTimeout as exc:
        bench.errors.append(f"{run.name}: {exc}")
    deliveries = await fake.deliveries()
    stats = await fake.stats()
    procs = await sampler.stop()
    received = first_received(deliveries, tag)
    firsts = sorted(min(times) for times in received.values())
    first_sent = min(r.sent_wall for r in records)
    first_accept = min((r.answered_wall for r in accepted), default=first_sent)
    last_accept = max((r.answered_wall for r in accepted), default=first_sent)
    result = {
        "scenario": run.name,
        "requests": len(records),
        "accepted_requests": len(accepted),
        "invites": invites,
        "accept_seconds": last_accept - first_sent,
        "accepted_invites_per_s": invites / max(last_accept - first_sent, 1e-9),
        "delivered": len(firsts),
        "duplicates": sum(len(times) - 1 for times in received.values()),
        "delivered_within_s": (firsts[-1] - first_accept) if firsts else None,
        "provider_emails_per_s": (
            (len(firsts) - 1) / (firsts[-1] - firsts[0]) if len(firsts) > 1 else None
        ),
        "provider_requests": stats.requests,
        "status_429": stats.by_status.get(429, 0),
        "provider_statuses": {str(k): v for k, v in sorted(stats.by_status.items())},
        "procs": ", ".join(f"{n} {s.cpu_load:.0f}%/{s.rss_max_mb:.0f}MB" for n, s in procs.items()),
    }
    log(
        f"bulk {run.name}: {invites} accepted in {result['accept_seconds']:.2f}s "
        f"({result['accepted_invites_per_s']:.0f}/s), {len(firsts)} delivered "
        f"{result['delivered_within_s'] or 0:.1f}s after the first accept, "
        f"{stats.requests} provider requests, {result['status_429']} × 429"
    )
    bench.extra[f"bulk: {run.name}, provider at {run.limit:g} req/s"] = (
        f"accepted in {result['accept_seconds']:.2f} s ({result['accepted_invites_per_s']:.0f} "
        f"invites/s); {len(firsts)}/{invites} delivered "
        f"{result['delivered_within_s'] or 0:.1f} s after the first accept "
        f"({result['provider_emails_per_s'] or 0:.0f} emails/s to the provider, "
        f"{stats.requests} requests, {result['status_429']} × 429, "
        f"{result['duplicates']} duplicates); {result['procs']}"
    )
    workflow_ids = [str(r.body["workflow_id"]) for r in accepted if "workflow_id" in r.body]
    return result, workflow_ids


async def work_per_email(
    bench: Bench, client: Client, system: System, batch_ids: list[str], per_batch: int
) -> None:
    """History events and workflow tasks per email: batches of `per_batch` vs single invites,
    each counted once every email is recorded as sent (before any delivery webhook)."""
    plan = bench.plan
    await bench.fake.client.reset()
    await bench.fake.client.configure(rate_limit_per_second=plan.bulk_limit)
    tag = bench.tag("singles")
    invites = load.Invites(system.base_url, tag, extra={"tenant_id": tag})
    result = await load.closed_loop(
        invites, count=plan.history_singles, concurrency=5, max_seconds=30
    )
    singles = len(result.accepted)
    await all_sent(client, f"TenantId='{tag}'", singles)
    single_ids = [e.id async for e in client.list_workflows(f"TenantId='{tag}'")]
    single = await server_work(client, single_ids, len(single_ids))
    batch = await server_work(client, batch_ids, len(batch_ids) * per_batch)
    bench.probes["server_work"] = {"single": single, "batch": batch}
    for name, work in (("single invite", single), (f"batch of {per_batch}", batch)):
        bench.extra[f"server work per email, {name}"] = (
            f"{work['events_per_email']:.2f} history events, "
            f"{work['workflow_tasks_per_email']:.2f} workflow tasks "
            f"({int(work['workflows'])} workflows, {int(work['emails'])} emails, counted once sent)"
        )


# -- fairness --------------------------------------------------------------------------------


async def fairness(bench: Bench) -> None:
    results = []
    for probe in fairness_program(bench.plan):
        results.append(await fairness_run(bench, probe))
    bench.probes["fairness"] = results


async def fairness_run(bench: Bench, probe: FairnessProbe) -> dict[str, Any]:
    """A fresh stack (dev server with or without priority and fairness, our worker and API at
    the provider's limit); A's backlog, then B's probes; everything stopped after."""
    db_dir = Path(tempfile.mkdtemp(prefix="bench-fairness-"))
    suffix = "fair" if probe.fair else "fifo"
    server = await start_dev_server(
        bench.log_dir,
        db_dir / "temporal.db",
        bench.server_args,
        name=f"temporal_{suffix}",
        dynamic_config=DYNAMIC_CONFIG if probe.fair else {},
    )
    try:
        client = await Client.connect(server.address)
        env = bench.our_env(server, rate_limit=probe.limit)
        worker = await start_our_worker(client, bench.log_dir, env, f"worker_{suffix}")
        api, url = await start_our_api(bench.log_dir, env)
        try:
            return await probe_tenants(bench, probe, url, client)
        finally:
            await api.stop()
            await worker.stop()
    finally:
        await server.stop()
        shutil.rmtree(db_dir, ignore_errors=True)


async def probe_tenants(
    bench: Bench, probe: FairnessProbe, url: str, client: Client
) -> dict[str, Any]:
    fake = bench.fake.client
    await fake.reset()
    await fake.configure(rate_limit_per_second=probe.limit)
    a_tag, b_tag = bench.tag("tenantA"), bench.tag("tenantB")
    timeout = bench.plan.client_timeout_s
    fill = await load.open_loop(
        load.Invites(url, a_tag, timeout, extra={"tenant_id": "tenant-a"}),
        rate=probe.fill_rate,
        seconds=probe.backlog / probe.fill_rate,
    )
    probes = await load.open_loop(
        load.Invites(url, b_tag, timeout, extra={"tenant_id": "tenant-b"}),
        rate=1 / probe.every_s,
        seconds=probe.probes * probe.every_s,
    )
    b_accepted = probes.accepted
    window_end = time.time() + probe.wait_s

    async def b_delivered() -> bool:
        received = first_received(await fake.deliveries(), b_tag)
        return len(received) >= len(b_accepted)

    try:
        await eventually(b_delivered, timeout=probe.wait_s, interval=1.0, what="B delivered")
    except ConditionTimeout:
        pass
    window_end = min(window_end, time.time())
    deliveries = await fake.deliveries()
    b_first = {a: min(t) for a, t in first_received(deliveries, b_tag).items()}
    a_first = first_received(deliveries, a_tag)
    waits = [b_first[r.email] - r.sent_wall for r in b_accepted if r.email in b_first]
    start = probes.started_wall
    a_during = sum(1 for t in a_first.values() if start <= min(t) <= window_end)
    b_during = sum(1 for t in b_first.values() if start <= t <= window_end)
    span = max(window_end - start, 1e-9)
    stats = await fake.stats()
    sent_at = {r.email: r.sent_wall for r in b_accepted}
    phases = await where_time_goes(client, url, deliveries, "tenant-b", sent_at)
    result = {
        "scenario": probe.name,
        "fair": probe.fair,
        "a_fill_errors": len(fill.records) - len(fill.accepted),
        "b_phases_s": phases,
        "a_accepted": len(fill.accepted),
        "a_accept_per_s": len(fill.accepted) / fill.duration_s,
        "b_accepted": len(b_accepted),
        "b_delivered": len(waits),
        "b_p50_s": percentile(waits, 50),
        "b_p99_s": percentile(waits, 99) if len(waits) == len(b_accepted) else None,
        "b_max_s": max(waits) if waits else None,
        "window_s": span,
        "a_per_s_during_probes": a_during / span,
        "b_per_s_during_probes": b_during / span,
        "status_429": stats.by_status.get(429, 0),
    }
    p99 = result["b_p99_s"]
    measured = (
        f"p99 {p99:.2f} s, p50 {result['b_p50_s']:.2f} s"
        if p99 is not None
        else f"{len(waits)}/{len(b_accepted)} handed over within {span:.0f} s"
    )
    log(f"fairness {probe.name}: B {measured}; A {result['a_per_s_during_probes']:.2f}/s")
    bench.extra[f"fairness: {probe.name}"] = (
        f"B's accept → provider {measured} ({len(b_accepted)} probes, one every "
        f"{probe.every_s:g} s); meanwhile A {result['a_per_s_during_probes']:.2f}/s and B "
        f"{result['b_per_s_during_probes']:.2f}/s to the provider (limit {probe.limit:g}/s, "
        f"{result['status_429']} × 429); A's {len(fill.accepted)} accepted at "
        f"{result['a_accept_per_s']:.0f}/s; B's time (p50/max s): "
        + ", ".join(f"{name} {p50:.2f}/{top:.2f}" for name, (p50, top) in phases.items())
    )
    return result


async def where_time_goes(
    client: Client,
    url: str,
    deliveries: list[Delivery],
    tenant_id: str,
    sent_at: dict[str, float],
) -> dict[str, tuple[float, float]]:
    """Where a tenant's sends spent their time (p50 and max, seconds), from each send's
    recorded first attempt: request sent -> provider call scheduled (the start and the
    first workflow task), -> started (the send queue's dispatch), -> received by the
    provider (waiting in the worker's Pacer, and the request)."""
    received: dict[str, tuple[float, float]] = {}  # our id -> (request sent, received)
    for delivery in deliveries:
        tags = {t.get("name"): t.get("value") for t in delivery.payload.get("tags") or []}
        email_id, to = tags.get("email_id"), delivery.to[0]
        if email_id and to in sent_at:
            received[str(email_id)] = (sent_at[to], delivery.received_at_wall)
    ids = [e.id async for e in client.list_workflows(f"TenantId='{tenant_id}'")]
    spans: dict[str, list[float]] = {"workflow": [], "queue": [], "worker": []}
    async with load.make_session(4, 10.0) as session:
        for workflow_id in ids:
            public_id = public_id_for(workflow_id)
            if public_id is None or public_id not in received:
                continue
            async with session.get(f"{url}/v1/emails/{public_id}") as response:
                status = await response.json()
            if not status.get("attempts"):
                continue  # its call has not finished yet
            attempt = status["attempts"][0]
            scheduled, started = (
                datetime.fromisoformat(attempt[t]).timestamp()
                for t in ("scheduled_at", "started_at")
            )
            sent, provider = received[public_id]
            spans["workflow"].append(scheduled - sent)
            spans["queue"].append(started - scheduled)
            spans["worker"].append(provider - started)
    return {
        name: (percentile(values, 50) or 0.0, max(values))
        for name, values in spans.items()
        if values
    }
