"""Schemathesis against our OpenAPI spec: no generated input makes the API answer 5xx.

Runs in-process on the real Temporal dev server (no worker: started workflows just wait),
so a refusal, a start and a status read all go through the real code paths. The caller is
a tenant (acme): generated `tenant_id`s and senders meet the tenant checks too.
"""

from __future__ import annotations

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

SCHEMA = schemathesis.openapi.from_dict(create_app().openapi())
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]


@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda op: op.label)
def test_no_generated_request_gets_a_server_error(
    app: FastAPI, settings: Settings, operation: Any
) -> None:
    settings.api_rate_limit_burst = 10_000
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
