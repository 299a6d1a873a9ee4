"""Structured logs (one JSON object a line) for the worker and the API.

Temporal's `workflow.logger` and `activity.logger` put the workflow's identity on each
record (`temporal_workflow` / `temporal_activity` extras); it becomes top-level fields here,
so every line of a send can be found by its workflow id. Secrets are never logged: they
are `SecretStr` in settings and never reach a message.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime
from typing import Any

_IDENTITY_FIELDS = ("workflow_id", "run_id", "workflow_type", "activity_type", "attempt")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for extra in ("temporal_workflow", "temporal_activity"):
            info = getattr(record, extra, None)
            if isinstance(info, dict):
                line.update({k: info[k] for k in _IDENTITY_FIELDS if k in info})
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure_logging() -> None:
    """JSON lines on stderr at LOG_LEVEL (default INFO); LOG_FORMAT=text for humans."""
    handler = logging.StreamHandler()
    if os.environ.get("LOG_FORMAT", "json") == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"), handlers=[handler], force=True)
