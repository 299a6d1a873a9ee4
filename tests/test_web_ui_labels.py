"""What an operator reads in the Temporal Web UI: each attempt's summary, the workflow's
summary and current details, decoded; and outbox sends that end when written.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import Client, WorkflowHistory
from temporalio.converter import DataConverter

from activities.coalesce_types import coalescer_of
from testkit.fake_resend import FakeResendServer, Fault
from tests.helpers import INVITE, wait_for_status
from workflows.types import EmailStatusResult

HISTORIES = Path(__file__).parent / "histories"
# Written by the recorder (scripts/record_histories.py): recipient, subject, token.
SECRETS_IN_RECORDED_INPUTS = ("ann@example.com", "bob@example.com", "token=", "report is ready")


def load(name: str) -> WorkflowHistory:
    return WorkflowHistory.from_json(name, json.loads((HISTORIES / f"{name}.json").read_text()))


async def summaries(
    events: list[HistoryEvent], converter: DataConverter, event_type: EventType.ValueType
) -> list[str]:
    """The decoded `user_metadata.summary` of each event of `event_type`, in order."""
    found = []
    for event in events:
        if event.event_type == event_type and event.user_metadata.HasField("summary"):
            [text] = await converter.decode([event.user_metadata.summary], [str])
            found.append(text)
    return found


async def test_each_attempt_of_a_retried_send_is_labelled_with_its_cause_and_wait() -> None:
    history = load("invite_retried_500_429_summarized")
    events = list(history.events)
    scheduled = EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    started = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED
    assert await summaries(events, DataConverter.default, scheduled) == [
        "attempt 1",
        "attempt 2 · after HTTP 500, waited 0.2 s",
        "attempt 3 · after HTTP 429, waited 1 s",
    ]
    assert await summaries(events, DataConverter.default, started) == ["invite for tenant acme"]


async def test_an_attempt_after_a_network_failure_names_the_error_type() -> None:
    events = list(load("invite_timeout_then_sent_summarized").events)
    labels = await summaries(
        events, DataConverter.default, EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    )
    assert labels == ["attempt 1", "attempt 2 · after ProviderNetworkError, waited 0.2 s"]


async def test_no_summary_in_recorded_histories_quotes_a_recipient_subject_or_token() -> None:
    for path in sorted(HISTORIES.glob("*.json")):
        for event in load(path.stem).events:
            if event.user_metadata.HasField("summary"):
                [text] = await DataConverter.default.decode([event.user_metadata.summary], [str])
                assert not any(secret in text for secret in SECRETS_IN_RECORDED_INPUTS), path


def test_a_recorded_outbox_send_completes_when_written_without_a_delivery_wait() -> None:
    for name in ("email_sent_outbox",):
        events = list(load(name).events)
        types = [event.event_type for event in events]
        completed = types.index(EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED)
        assert EventType.EVENT_TYPE_TIMER_STARTED not in types[completed:], name
        assert types[-1] == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED
        [result] = events[-1].workflow_execution_completed_event_attributes.result.payloads
        state = DataConverter.default.payload_converter.from_payload(result, EmailStatusResult)
        assert (state.status, state.transport) == ("sent", "outbox")


async def test_live_send_is_labelled_in_the_web_ui_through_the_codec(
    shards: int,
    api: httpx.AsyncClient,
    worker: None,
    client: Client,
    fake_resend: FakeResendServer,
) -> None:
    fake_resend.fake.enqueue_faults([Fault(status=429, retry_after=1)])
    body = (await api.post("/v1/invites", json={**INVITE, "tenant_id": "acme"})).json()
    status = await wait_for_status(api, body["invite_id"], "sent")
    handle = client.get_workflow_handle(body["workflow_id"])
    # Coalesced, its attempts are those of the call that carried it, in its coalescer.
    made_by = client.get_workflow_handle(coalescer_of(status["call_id"])) if shards else handle
    carried = f" · call {status['call_id']} · 1 email(s)" if shards else ""

    description = await handle.describe()
    assert await description.static_summary() == "invite for tenant acme"
    history = await made_by.fetch_history()
    # Encrypted at rest: the client's converter (the codec) decodes the labels.
    labels = await summaries(
        list(history.events), client.data_converter, EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    )
    assert labels == [
        f"attempt 1{carried}",
        f"attempt 2 · after 429 from resend, waited 1 s{carried}",
    ]

    metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    details = metadata.current_details
    assert details.startswith("**invite** · tenant `acme` · **sent** after 2 attempt(s)")
    if shards:  # the invite names the call; its coalescer counts what it sent
        assert f"coalesced call `{status['call_id']}`" in details
        shard = await made_by.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
        assert shard.current_details.endswith("1 call(s), 1 email(s) sent")
    assert "last error" not in details  # the send succeeded: no stale error
    assert re.search(r"listening for delivery events until \d{4}-\d\d-\d\d \d\d:\d\d UTC", details)
    assert INVITE["email"] not in details and "token" not in details
