"""Structured logs (one JSON object a line) for the worker and the API.

Temporal's `workflow.logger` and `activity.logger` put the workflow's identity on each
record (`temporal_workflow` / `temporal_activity` extras); it becomes top-level fields here,
so every line of a send can be found by its workflow id.

Nothing secret is logged: settings hold secrets as `SecretStr`, our own lines name types,
statuses and ids only, and two filters cover what other code logs:
- the Temporal SDK logs a failed activity (and, at DEBUG, a failed workflow) with its
  exception, whose message is the provider's text and can quote a recipient; uvicorn logs
  an API error the same way: records of those loggers keep the exception's type and
  frames, never its message;
- a path under `/codec/` other than `/codec/decode` and `/codec/encode` may hold the Web
  UI's codec capability (`/codec/<secret>/decode`, or any mistyped or percent-encoded
  variant of it): in uvicorn's access log and in ours, everything after `/codec/` is
  replaced, whatever the path looks like;
- a path or query may hold a recipient's address (`DELETE /suppressions/ann@example.com`,
  as Resend's API takes it): in uvicorn's access log, anything shaped like an address
  (percent-encoded or not) becomes `[address]`.
"""

from __future__ import annotations

import json
import logging
import os
import re
import traceback
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from temporalio.exceptions import ApplicationError

_IDENTITY_FIELDS = ("workflow_id", "run_id", "workflow_type", "activity_type", "attempt")
# Loggers of other people's code that log exceptions they did not write the message of.
WITHHELD_LOGGERS = frozenset({"temporalio", "uvicorn"})
# `/codec/` in a path, however it is spelled or encoded, and what follows it.
_CODEC_PATH = re.compile(r"/codec/(\S*)", re.IGNORECASE)
_OPERATOR_CODEC_ROUTE = re.compile(r"(?:decode|encode)(?:\?\S*)?")
# An address in a request line: its parts end at what ends a path segment or a query value.
_ADDRESS = re.compile(r"[^\s/?&=#\"'<>]+@[^\s/?&=#\"'<>]+")


def exception_without_text(error: BaseException) -> str:
    """A traceback of `error` and its causes with every exception message left out."""
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or (
            None if current.__suppress_context__ else current.__context__
        )
    parts = [
        "Traceback (most recent call last):\n"
        + "".join(traceback.format_tb(link.__traceback__))
        + _label(link)
        for link in reversed(chain)
    ]
    return "\n\nwhich caused:\n\n".join(parts)


def _label(error: BaseException) -> str:
    label = f"{type(error).__module__}.{type(error).__qualname__}"
    if isinstance(error, ApplicationError):
        label += f" [type={error.type}, non_retryable={error.non_retryable}]"
    return label + " (message withheld: it may quote an address)"


class WithholdExceptionText(logging.Filter):
    """Records of the SDK's and uvicorn's loggers keep their exception's type and frames only."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.name.split(".")[0] in WITHHELD_LOGGERS:
            error = record.exc_info[1]
            if error is not None:
                record.exc_text = exception_without_text(error)
            record.exc_info = None
        return True


def redact_codec_capability(text: str) -> str:
    """`text` with anything that may be a codec capability (a path under `/codec/` other
    than the operator routes) replaced; percent-encoding does not hide it."""
    decoded = unquote(text)
    if "/codec/" not in decoded.lower():
        return text

    def redact(match: re.Match[str]) -> str:
        if _OPERATOR_CODEC_ROUTE.fullmatch(match[1]):
            return match[0]
        return "/codec/[redacted]"

    return _CODEC_PATH.sub(redact, decoded)


def redact_addresses(text: str) -> str:
    """`text` (a request's path and query) with every address replaced by `[address]`;
    percent-encoding, once or more, does not hide one."""
    decoded = text
    for _ in range(4):  # unquote to its fixed point (a client may encode twice)
        if (plainer := unquote(decoded)) == decoded:
            break
        decoded = plainer
    if "@" not in decoded:
        return text
    return _ADDRESS.sub("[address]", decoded)


class _RedactText(logging.Filter):
    """Rewrites a record's message and string arguments with `redact`."""

    @staticmethod
    def redact(text: str) -> str:
        raise NotImplementedError

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = self.redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(self.redact(a) if isinstance(a, str) else a for a in record.args)
        return True


class RedactAddresses(_RedactText):
    """On uvicorn's access logger: an address in a request line becomes `[address]`."""

    redact = staticmethod(redact_addresses)


class RedactCodecCapability(_RedactText):
    """On uvicorn's access logger and our handler: a codec capability in a record's
    message or arguments becomes `/codec/[redacted]`."""

    redact = staticmethod(redact_codec_capability)


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
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exc"] = record.exc_text
        return json.dumps(line, default=str)


def configure_logging() -> None:
    """JSON lines on stderr at LOG_LEVEL (default INFO); LOG_FORMAT=text for humans."""
    handler = logging.StreamHandler()
    if os.environ.get("LOG_FORMAT", "json") == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    handler.addFilter(WithholdExceptionText())
    handler.addFilter(RedactCodecCapability())
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"), handlers=[handler], force=True)
    protect_logs()


def protect_logs() -> None:
    """The filters on uvicorn's loggers, which have handlers of their own (they do not reach
    ours): also applied by an app mounted in another, whose logging is that app's."""
    _add_filter(logging.getLogger("uvicorn.error"), WithholdExceptionText())
    _add_filter(logging.getLogger("uvicorn.access"), RedactCodecCapability())
    _add_filter(logging.getLogger("uvicorn.access"), RedactAddresses())


def _add_filter(logger: logging.Logger, new: logging.Filter) -> None:
    if not any(isinstance(f, type(new)) for f in logger.filters):
        logger.addFilter(new)
