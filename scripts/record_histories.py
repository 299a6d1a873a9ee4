"""Record workflow histories for the replay tests: `python scripts/record_histories.py`.

Runs each scenario on a fresh dev server against the fake Resend, then exports the history
with the real CLI (`temporal workflow show --output json`) into tests/histories/. Re-record
only when a change is meant to be incompatible; otherwise old histories must keep replaying.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
from pydantic import SecretStr
from temporalio.client import Client, WorkflowFailureError
from temporalio.testing import WorkflowEnvironment

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from activities.types import EmailMessage, EmailTag  # noqa: E402
from config import Settings  # noqa: E402
from tests.conftest import temporal_binary  # noqa: E402
from tests.fake_resend import FakeResendServer, Fault  # noqa: E402
from worker import build_transport, build_workers  # noqa: E402
from workflows.send_email import SendEmail  # noqa: E402
from workflows.send_invite_email import SendInviteEmail  # noqa: E402
from workflows.shared import DeliveryPolicy, SendEmailInput, SendInviteEmailInput  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "tests" / "histories"
log = logging.getLogger("record")

Scenario = Callable[[Client, DeliveryPolicy], Awaitable[str]]


def invite_input(policy: DeliveryPolicy) -> SendInviteEmailInput:
    invite = f"inv_{uuid.uuid4().hex}"
    return SendInviteEmailInput(
        invite_id=invite,
        to="ann@example.com",
        sender="durable-mail <onboarding@resend.dev>",
        tenant_name="Acme",
        inviter_name="Bob",
        accept_url=f"https://app.example.test/invites/accept?invite={invite}&token=recorded",
        role="admin",
        policy=policy,
    )


async def run_invite(client: Client, policy: DeliveryPolicy) -> str:
    data = invite_input(policy)
    workflow_id = "invite-" + data.invite_id.removeprefix("inv_")
    handle = await client.start_workflow(
        SendInviteEmail.run, data, id=workflow_id, task_queue="record"
    )
    try:
        await handle.result()
    except WorkflowFailureError:
        pass
    return workflow_id


async def run_email(client: Client, policy: DeliveryPolicy) -> str:
    email_id = f"em_{uuid.uuid4().hex}"
    message = EmailMessage(
        sender="durable-mail <onboarding@resend.dev>",
        to=["ann@example.com", "bob@example.com"],
        subject="Your report is ready",
        text="Hello",
        html="<p>Hello</p>",
        tags=[EmailTag("kind", "email"), EmailTag("email_id", email_id)],
    )
    workflow_id = "email-" + email_id.removeprefix("em_")
    handle = await client.start_workflow(
        SendEmail.run,
        SendEmailInput(email_id=email_id, message=message, policy=policy),
        id=workflow_id,
        task_queue="record",
    )
    await handle.result()
    return workflow_id


SCENARIOS: dict[str, tuple[list[Fault], Scenario]] = {
    "invite_sent": ([], run_invite),
    "invite_retried_500_429": ([Fault(status=500), Fault(status=429, retry_after=1)], run_invite),
    "invite_failed_422": ([Fault(status=422, name="validation_error")], run_invite),
    "invite_timeout_then_sent": ([Fault(hold=3.0)], run_invite),
    "email_sent": ([], run_email),
}


async def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    OUT.mkdir(parents=True, exist_ok=True)
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_binary(), dev_server_log_level="error"
    )
    address = env.client.service_client.config.target_host
    try:
        with FakeResendServer() as fake:
            settings = Settings(
                _env_file=None,  # type: ignore[call-arg]
                task_queue="record",
                send_task_queue="record-send",
                resend_api_key=SecretStr("re_test_key"),
                resend_api_url=fake.url,
                resend_timeout_seconds=2.0,
                resend_rate_limit_per_second=50.0,
            )
            policy = DeliveryPolicy(
                initial_backoff_seconds=0.2,
                max_backoff_seconds=1.0,
                attempt_timeout_seconds=10.0,
                send_task_queue="record-send",
            )
            async with httpx.AsyncClient(base_url=fake.url, timeout=2.0) as http:
                workers = build_workers(env.client, settings, build_transport(settings, http))
                async with workers[0], workers[1]:
                    for name, (faults, scenario) in SCENARIOS.items():
                        fake.fake.enqueue_faults(faults)
                        workflow_id = await scenario(env.client, policy)
                        shown = subprocess.run(
                            [temporal_binary(), "workflow", "show", "--address", address,
                             "--workflow-id", workflow_id, "--output", "json"],
                            check=True, capture_output=True, text=True,
                        )  # fmt: skip
                        (OUT / f"{name}.json").write_text(shown.stdout)
                        log.info("recorded %s (%s)", name, workflow_id)
    finally:
        await env.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
