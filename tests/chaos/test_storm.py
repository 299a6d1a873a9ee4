"""Chaos: a minute-long storm of 429s on emails with the largest body we accept.

Every send is answered `429 retry-after: 1` for a minute, so each email is attempted about
once a second; its body is 128 KiB of 4-byte characters (~393 KB once JSON-escaped). Before
bounded history each attempt recorded the body again, and such a storm grew one history by
~24 MB a minute towards Temporal's 50 MB limit (the workflow is then terminated, the email
lost). The scenario prints the history of each send's current run, during the storm and
after it, and checks that when the provider recovers every email goes out exactly once.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from testkit.polling import eventually

from .load import HEADERS
from .report import ChaosReport, Figures
from .stack import ONE_CALL_PER_EMAIL, StackFactory

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(300)]

log = logging.getLogger("tests.chaos")

EMAILS = 20
STORM_SECONDS = 60.0
LARGEST_TEXT = "\U0001f600" * (128 * 1024 // 4)
# Our design limits for one run (Temporal's own: 51,200 events, 50 MB).
MAX_RUN_EVENTS = 10_000
MAX_RUN_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True)
class CurrentRuns:
    """The current run of every send (`describe`), and the runs and attempts so far (GET)."""

    max_bytes: int
    max_events: int
    max_runs: int
    max_attempts: int

    def notes(self, when: str) -> dict[str, Any]:
        return {
            f"{when}_current_run_max_bytes": self.max_bytes,
            f"{when}_current_run_max_events": self.max_events,
            f"{when}_max_runs": self.max_runs,
            f"{when}_max_attempts": self.max_attempts,
        }


async def current_runs(
    client: Client, api: httpx.AsyncClient, sends: dict[str, str]
) -> CurrentRuns:
    """`sends`: email id -> workflow id."""
    sizes, events, runs, attempts = [], [], [], []
    for email_id, workflow_id in sends.items():
        info = (await client.get_workflow_handle(workflow_id).describe()).raw_description
        sizes.append(info.workflow_execution_info.history_size_bytes)
        events.append(info.workflow_execution_info.history_length)
        status = (await api.get(f"/v1/emails/{email_id}")).json()
        runs.append(status["runs"])
        attempts.append(status["attempt_count"])
    return CurrentRuns(max(sizes), max(events), max(runs), max(attempts))


async def test_429_storm_for_a_minute_with_the_largest_body_sends_each_email_once(
    stack_factory: StackFactory, chaos_report: ChaosReport
) -> None:
    stack = await stack_factory(extra_env=ONE_CALL_PER_EMAIL)
    fake = stack.fake_server.fake
    client = await stack.client()
    run = uuid.uuid4().hex[:8]
    fake.configure(error_rate=1.0, error_status=429)  # every send: 429, retry-after 1
    started = time.monotonic()
    accepted: dict[str, str] = {}  # address -> email id
    sends: dict[str, str] = {}  # email id -> workflow id
    async with httpx.AsyncClient(base_url=stack.api_urls[0], headers=HEADERS, timeout=30) as api:
        for n in range(EMAILS):
            address = f"s{n}@storm.chaos.example"
            email = {"to": address, "subject": f"storm {n}", "text": LARGEST_TEXT}
            response = await api.post(
                "/v1/emails", json=email, headers={"Idempotency-Key": f"storm-{run}-{n}"}
            )
            assert response.status_code == 202, response.text
            accepted[address] = response.json()["id"]
            sends[response.json()["id"]] = response.json()["workflow_id"]
        # The storm lasts a minute: a chosen length, not a wait for something to happen.
        await asyncio.sleep(max(0.0, started + STORM_SECONDS - time.monotonic()))
        during = await current_runs(client, api, sends)
        storm_429s = fake.requests_by_status.get(429, 0)
        fake.configure(error_rate=0.0)

        async def all_sent() -> bool:
            for email_id in sends:
                status = (await api.get(f"/v1/emails/{email_id}")).json()
                if status.get("status") != "sent":
                    return False
            return True

        await eventually(all_sent, timeout=120, interval=1.0, what="every email sent")
        after = await current_runs(client, api, sends)

    figures = Figures.of(
        "provider 429 x100% 60s, 128 KiB", EMAILS, fake, accepted,
        time.monotonic() - started, {**during.notes("storm"), **after.notes("sent")},
    )  # fmt: skip
    chaos_report.add(figures)
    log.info("429 storm, current runs: end of the storm %s; sent %s", during, after)
    assert storm_429s >= EMAILS * 20  # an attempt every second or so per email
    assert figures.lost == 0 and figures.duplicates == 0 and figures.unaccepted_delivered == 0
    assert figures.delivered == EMAILS
    assert max(during.max_bytes, after.max_bytes) < MAX_RUN_BYTES
    assert max(during.max_events, after.max_events) < MAX_RUN_EVENTS
