"""Schemathesis against our OpenAPI spec: no generated input makes the API answer 5xx.

Runs in-process on the real Temporal dev server (no worker: started workflows just wait;
a worker for the routes whose writes a worker confirms), so a refusal, a start and a status
read all go through the real code paths. The caller is
a tenant (acme): generated `tenant_id`s and senders meet the tenant checks too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis.generation.case import Case

from api.main import create_app
from config import Settings
from testkit.keys import ACME_KEY
from testkit.procs import Proc
from testkit.stack import start_worker, worker_env, worker_proc

SCHEMA = schemathesis.openapi.from_dict(create_app().openapi())
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]
# A tenant's suppression list and webhook endpoints are workflows whose updates a worker
# confirms: with none, a write answers 503 after the confirm timeout, as designed (nothing
# is claimed done). Those routes are fuzzed with a worker.
WORKER_CONFIRMED = ("/suppressions", "/webhooks/{", "/webhook-endpoints")


def needs_worker(path: str) -> bool:
    return path.endswith("/webhooks") or any(part in path for part in WORKER_CONFIRMED)


@pytest.fixture
def worker_process(settings: Settings, tmp_path: Path) -> Iterator[Callable[[], None]]:
    """Starts `python worker.py` with the test's settings when called; stopped after."""
    procs: list[Proc] = []

    def start() -> None:
        proc = worker_proc(worker_env(settings), tmp_path)
        procs.append(proc)
        asyncio.run(start_worker(proc))

    yield start
    for proc in procs:
        asyncio.run(proc.stop())


@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda op: op.label)
def test_no_generated_request_gets_a_server_error(
    app: FastAPI, settings: Settings, operation: Any, worker_process: Callable[[], None]
) -> None:
    settings.api_rate_limit_burst = 10_000
    if needs_worker(operation.path):
        worker_process()
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    live = schema[operation.path][operation.method.upper()]

    @given(case=live.as_strategy())
    @hypothesis_settings(
        max_examples=30,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def check(case: Case) -> None:
        response = case.call(headers={"Authorization": f"Bearer {ACME_KEY}"})
        assert response.status_code < 500, (case.as_curl_command(), response.text)

    check()
