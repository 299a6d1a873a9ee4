"""`worker.set_current_version` retries what the server may answer while it is busy or has
not yet seen this version's pollers, and gives up at once on anything else.

CI saw the dev server answer `CANCELLED: operation was canceled` to the call under load; the
worker then failed to start. A fake service stands in for the server here: the outcome is the
server's answer, not its timing.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from temporalio.service import RPCError, RPCStatusCode

from config import Settings
from worker import set_current_version


class FakeService:
    def __init__(self, answers: list[RPCStatusCode | None]) -> None:
        self.answers = answers
        self.calls = 0

    async def set_worker_deployment_current_version(self, request: Any, **_: Any) -> object:
        answer = self.answers[min(self.calls, len(self.answers) - 1)]
        self.calls += 1
        if answer is not None:
            raise RPCError("from the fake", answer, b"")
        return object()


def fake_client(service: FakeService) -> Any:
    return SimpleNamespace(namespace="default", identity="test", workflow_service=service)


@pytest.mark.parametrize(
    "transient",
    [
        RPCStatusCode.CANCELLED,
        RPCStatusCode.DEADLINE_EXCEEDED,
        RPCStatusCode.UNAVAILABLE,
        RPCStatusCode.NOT_FOUND,
        RPCStatusCode.FAILED_PRECONDITION,
    ],
)
async def test_transient_answers_are_retried(transient: RPCStatusCode) -> None:
    service = FakeService([transient, transient, None])
    await set_current_version(fake_client(service), Settings(), timeout=10)
    assert service.calls == 3


async def test_other_answers_fail_at_once() -> None:
    service = FakeService([RPCStatusCode.PERMISSION_DENIED, None])
    with pytest.raises(RPCError) as raised:
        await set_current_version(fake_client(service), Settings(), timeout=10)
    assert raised.value.status == RPCStatusCode.PERMISSION_DENIED
    assert service.calls == 1


async def test_retries_end_at_the_deadline() -> None:
    service = FakeService([RPCStatusCode.CANCELLED])
    with pytest.raises(RPCError) as raised:
        await set_current_version(fake_client(service), Settings(), timeout=0.5)
    assert raised.value.status == RPCStatusCode.CANCELLED
    assert 2 <= service.calls <= 10


async def test_a_server_without_versioning_has_nothing_to_set() -> None:
    service = FakeService([RPCStatusCode.UNIMPLEMENTED])
    await set_current_version(fake_client(service), Settings(), timeout=10)
    assert service.calls == 1
