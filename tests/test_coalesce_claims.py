"""A coalesced call attempt whose claims cannot be answered: no provider call, and the
attempt says so (retried under the same key, never counted as maybe sent)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from temporalio.client import WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import ActivityEnvironment

from activities import errors
from activities.coalesce import CoalesceActivities
from activities.coalesce_types import WITHDRAWN, CoalescedAttemptInput, CoalesceRef
from activities.transports.resend import ResendTransport
from testkit.fake_resend import FakeResendServer
from testkit.keys import FAKE_KEY


class _Handle:
    def __init__(self, answer: Exception) -> None:
        self._answer = answer

    async def execute_update(self, *_: Any, **__: Any) -> Any:
        raise self._answer


class _Client:
    """Answers every claim (`execute_update`) with one exception."""

    def __init__(self, answer: Exception) -> None:
        self.answer = answer

    def get_workflow_handle(self, workflow_id: str) -> _Handle:
        return _Handle(self.answer)


@pytest.fixture
async def http(fake_resend: FakeResendServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=fake_resend.url) as client:
        yield client


def attempt() -> CoalescedAttemptInput:
    not_after = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    refs = [CoalesceRef(f"em_{n}", f"email-{n}", "0" * 64, 100, not_after) for n in range(3)]
    return CoalescedAttemptInput("shard/1-abc", "coalesced/shard/1-abc", refs, 1, not_after)


@pytest.mark.parametrize(
    "answer",
    [
        # The server gave up waiting for the email's worker (busy, or none running).
        WorkflowUpdateRPCTimeoutOrCancelledError(),
        RPCError("unavailable", RPCStatusCode.UNAVAILABLE, b""),
    ],
    ids=["update-timed-out", "rpc-error"],
)
async def test_a_claim_without_an_answer_fails_the_attempt_before_the_provider(
    http: httpx.AsyncClient, fake_resend: FakeResendServer, answer: Exception
) -> None:
    activities = CoalesceActivities(ResendTransport(http, FAKE_KEY), _Client(answer))  # type: ignore[arg-type]
    with pytest.raises(ApplicationError) as caught:
        await ActivityEnvironment().run(activities.send_coalesced, attempt())
    assert caught.value.type == errors.MESSAGE_UNAVAILABLE and not caught.value.non_retryable
    assert errors.MESSAGE_UNAVAILABLE in errors.NOT_ACCEPTED
    assert "provider was not called" in caught.value.message
    assert fake_resend.fake.requests_total == 0


async def test_a_claim_of_an_ended_workflow_withdraws_its_email(
    http: httpx.AsyncClient, fake_resend: FakeResendServer
) -> None:
    gone = RPCError("not found", RPCStatusCode.NOT_FOUND, b"")
    activities = CoalesceActivities(ResendTransport(http, FAKE_KEY), _Client(gone))  # type: ignore[arg-type]
    result = await ActivityEnvironment().run(activities.send_coalesced, attempt())
    assert [item.claim for item in result.items] == [WITHDRAWN] * 3
    assert fake_resend.fake.requests_total == 0
