"""Settings of a test stack: its own queues, the fake Resend, the test secrets, short delays."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from temporalio.converter import DataConverter

from config import Settings
from infra.temporal_client import data_converter
from testkit.keys import CODEC_KEYS, FAKE_KEY


def stack_settings(fake_resend_url: str, outbox_dir: Path, **overrides: Any) -> Settings:
    """Settings (no .env) with queues of their own, sending to the fake Resend at
    `fake_resend_url`, payloads encrypted with the test codec keys; `overrides` win."""
    suffix = uuid.uuid4().hex[:12]
    values: dict[str, Any] = {
        "task_queue": f"wf-{suffix}",
        "send_task_queue": f"send-{suffix}",
        "resend_api_key": SecretStr(FAKE_KEY),
        "resend_api_url": fake_resend_url,
        "resend_timeout_seconds": 5.0,
        "resend_rate_limit_per_second": 50.0,
        "outbox_dir": outbox_dir,
        "payload_codec_keys": SecretStr(CODEC_KEYS),
        **overrides,
    }
    return Settings(_env_file=None, **values)


def test_converter() -> DataConverter:
    """The converter of the API and the worker under test (the test codec keys)."""
    return data_converter(Settings(_env_file=None, payload_codec_keys=SecretStr(CODEC_KEYS)))


# A helper, not a test: pytest would collect it (by its name) where a test module imports it.
test_converter.__test__ = False  # type: ignore[attr-defined]
