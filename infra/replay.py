"""Replay workflow histories against today's workflow code (`make replay`).

    python -m infra.replay tests/histories        # every *.json in a folder
    python -m infra.replay history.json           # one `temporal workflow show -o json`
    python -m infra.replay invite-<hex>           # fetched from the server (TEMPORAL_*)

Payloads are decrypted with PAYLOAD_CODEC_KEYS or, when it is not set, with the keys
`make dev` generated (`.dev/codec_keys` in the current folder), so a history of `make dev`
replays without extra steps. Each history is named by its workflow id. The output is one
line per history (`ok` or `FAILED <workflow id>  <what went wrong>`), then the details of
each failure; the exit code is 1 if any history did not replay: the change would break the
sends in flight (use `workflow.patched`).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import re
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from google.protobuf.message import Message
from pydantic import SecretStr
from temporalio.api.common.v1 import Payload
from temporalio.client import Client, WorkflowHistory
from temporalio.converter import DataConverter, PayloadCodec
from temporalio.runtime import Runtime, TelemetryConfig
from temporalio.service import RPCError
from temporalio.worker import Replayer

from config import Settings, get_settings
from infra.codec import ENCODING, KEY_ID_METADATA, CodecKeyError, parse_codec_keys
from infra.temporal_client import connect, data_converter
from workflows.registry import WORKFLOWS

# Where `make dev` keeps the payload key it generated (scripts/dev.py).
DEV_CODEC_KEYS = Path(".dev/codec_keys")
_EVENT = re.compile(r"(?:HistoryEvent\(id: |event[ _]id[:= ]+)(\d+)")
_CORE_MESSAGE = re.compile(r'message: "([^"]*Nondeterminism[^"]*)"')
_QUOTED = re.compile(r"'([^']+)'")
_FAILURE_TYPE = re.compile(r'r#type: "(\w+)"')
_NO_KEY_HINT = (
    "set PAYLOAD_CODEC_KEYS, or run from the folder where `make dev` keeps .dev/codec_keys"
)


@dataclass
class ReplayOutcome:
    """How one history replayed: `error` is a one-line summary, `detail` the full story."""

    workflow_id: str
    source: str = ""
    error: str | None = None
    event_id: int | None = None
    detail: str = ""

    def line(self) -> str:
        where = f"  ({self.source})" if self.source else ""
        if self.error is None:
            return f"ok      {self.workflow_id}{where}"
        return f"FAILED  {self.workflow_id}  {self.error}{where}"


def replay_settings(settings: Settings | None = None) -> tuple[Settings, str]:
    """The settings to replay with, and where their codec keys come from ("" if none).

    Without PAYLOAD_CODEC_KEYS, the keys `make dev` generated (`.dev/codec_keys`) are used.
    """
    settings = settings or get_settings()
    keys = settings.payload_codec_keys
    if keys is not None and keys.get_secret_value().strip():
        return settings, "PAYLOAD_CODEC_KEYS"
    if DEV_CODEC_KEYS.is_file():
        dev_keys = SecretStr(DEV_CODEC_KEYS.read_text().strip())
        return settings.model_copy(update={"payload_codec_keys": dev_keys}), str(DEV_CODEC_KEYS)
    return settings, ""


def keys_line(settings: Settings, origin: str) -> str:
    """Which codec keys decrypt, for the operator: key ids only, never the keys."""
    if not origin or settings.payload_codec_keys is None:
        return f"no payload codec key: encrypted histories cannot decode ({_NO_KEY_HINT})"
    ids = ", ".join(parse_codec_keys(settings.payload_codec_keys.get_secret_value()))
    return f"payload codec key ids {ids} (from {origin})"


async def replay(
    history: WorkflowHistory,
    workflows: Sequence[type] = WORKFLOWS,
    converter: DataConverter | None = None,
    source: str = "",
) -> ReplayOutcome:
    """Replay one history; decoding problems are reported before replay is attempted."""
    converter = converter or data_converter(replay_settings()[0])
    undecodable = await decode_problem(history, converter.payload_codec)
    if undecodable is not None:
        detail = f"{undecodable}\nTo decrypt: {_NO_KEY_HINT} (with the key id above)."
        return ReplayOutcome(history.workflow_id, source, undecodable, detail=detail)
    replayer = Replayer(workflows=workflows, data_converter=converter, runtime=_quiet_runtime())
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    if result.replay_failure is None:
        return ReplayOutcome(history.workflow_id, source)
    message = str(result.replay_failure)
    core = _CORE_MESSAGE.search(message)
    if core is None:
        # Any other failed workflow task: its message is an encoded failure, its type is not.
        failure_type = _FAILURE_TYPE.search(message)
        summary = f"workflow task failed: {failure_type[1] if failure_type else message[:200]}"
        detail = f"{message}\n(the exception and its traceback are in the log below)"
        return ReplayOutcome(history.workflow_id, source, summary, detail=detail)
    event_id = _event_of(history, core[1])
    where = f" at event {event_id}" if event_id is not None else ""
    summary = f"nondeterminism{where}: {core[1][:300]}"
    return ReplayOutcome(history.workflow_id, source, summary, event_id, detail=message)


async def decode_problem(history: WorkflowHistory, codec: PayloadCodec | None) -> str | None:
    """Why this codec cannot decode the history's encrypted payloads, or None.

    One payload per key id is tried: the replayer would otherwise fail on it with a long
    stack trace that does not say which key is missing or wrong.
    """
    tried: set[str] = set()
    for event in history.events:
        for payload in _payloads(event):
            key_id = payload.metadata.get(KEY_ID_METADATA, b"").decode(errors="replace")
            if payload.metadata.get("encoding") != ENCODING or key_id in tried:
                continue
            tried.add(key_id)
            where = f"key id {key_id!r}, event {event.event_id}"
            if codec is None:
                return f"cannot decode: encrypted and no codec key is set ({where})"
            try:
                await codec.decode([payload])
            except CodecKeyError:
                return f"cannot decode: missing codec key ({where})"
            except InvalidTag:
                return f"cannot decode: wrong codec key ({where})"
    return None


def _payloads(message: Message) -> Iterator[Payload]:
    """Every Payload in a protobuf message tree (inputs, results, failures, memos...)."""
    for _field, value in message.ListFields():
        children: Iterable[object]
        if isinstance(value, Message):
            children = [value]
        elif isinstance(value, Mapping):  # map fields: memo, headers, search attributes
            children = value.values()
        elif isinstance(value, Sequence) and not isinstance(value, str | bytes):
            children = value  # repeated fields
        else:
            continue
        for child in children:
            if isinstance(child, Payload):
                yield child
            elif isinstance(child, Message):
                yield from _payloads(child)


def _event_of(history: WorkflowHistory, message: str) -> int | None:
    """The history event the message is about: by id, else the first naming what it quotes."""
    found = _EVENT.search(message)
    if found:
        return int(found[1])
    for name in _QUOTED.findall(message):
        for event in history.events:
            if f'"{name}"' in str(event):
                return int(event.event_id)
    return None


@functools.cache
def _quiet_runtime() -> Runtime:
    """A runtime without the SDK core's console logs: failures are reported by us, in order."""
    return Runtime(telemetry=TelemetryConfig(logging=None))


def load_file(path: Path) -> WorkflowHistory:
    """A `temporal workflow show -o json` file, named by the workflow id it records."""
    content = json.loads(path.read_text())
    started = content["events"][0].get("workflowExecutionStartedEventAttributes", {})
    return WorkflowHistory.from_json(started.get("workflowId") or path.stem, content)


async def replay_paths(
    paths: Sequence[Path], workflows: Sequence[type] = WORKFLOWS
) -> list[ReplayOutcome]:
    """Replay JSON histories; a folder means every `*.json` in it."""
    files: list[Path] = []
    for path in paths:
        files.extend(sorted(path.glob("*.json")) if path.is_dir() else [path])
    converter = data_converter(replay_settings()[0])
    outcomes = []
    for file in files:
        try:
            history = load_file(file)
        except (OSError, ValueError, KeyError, IndexError) as err:
            summary = f"cannot read: {type(err).__name__}: {err}"
            outcomes.append(ReplayOutcome(file.stem, str(file), summary, detail=summary))
            continue
        outcomes.append(await replay(history, workflows, converter, source=str(file)))
    return outcomes


async def replay_from_server(client: Client, workflow_id: str) -> ReplayOutcome:
    try:
        history = await client.get_workflow_handle(workflow_id).fetch_history()
    except RPCError as err:
        summary = f"cannot fetch history: {err.message}"
        return ReplayOutcome(workflow_id, "", summary, detail=summary)
    return await replay(history, converter=client.data_converter)


class _Collect(logging.Handler):
    """Keeps the log records of a run (the SDK's, the client's) to print after the summary."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


async def run(targets: Sequence[str], logs: _Collect | None = None) -> int:
    """Replay files, folders and workflow ids; print the report; 0 if every one replayed."""
    settings, origin = replay_settings()
    out = sys.stdout
    try:
        out.write(keys_line(settings, origin) + "\n")
    except CodecKeyError as err:
        out.write(f"unusable payload codec keys (from {origin}): {err}\n")
        return 2
    paths = [Path(t) for t in targets if Path(t).exists()]
    outcomes = await replay_paths(paths) if paths else []
    ids = [t for t in targets if not Path(t).exists()]
    if ids:
        try:
            client = await connect(settings)
        except RuntimeError as err:  # the SDK's "Failed client connect: ..."
            summary = f"cannot connect to {settings.temporal_address}: {err}"
            outcomes += [ReplayOutcome(i, "", summary, detail=summary) for i in ids]
        else:
            outcomes += [await replay_from_server(client, i) for i in ids]
    for outcome in outcomes:
        out.write(outcome.line() + "\n")
    failed = [o for o in outcomes if o.error is not None]
    out.write(f"{len(outcomes) - len(failed)} replayed, {len(failed)} failed\n")
    for outcome in failed:
        where = f" ({outcome.source})" if outcome.source else ""
        out.write(f"\n--- {outcome.workflow_id}{where}\n{outcome.detail}\n")
    if failed and logs is not None and logs.lines:
        out.write("\n--- log\n" + "\n".join(logs.lines) + "\n")
    return 1 if failed or not outcomes else 0


def main() -> None:
    targets = sys.argv[1:] or ["tests/histories"]
    # Logs (SDK tracebacks, client warnings) are kept for the end: the report comes first.
    logs = _Collect()
    logging.basicConfig(handlers=[logs], level=logging.INFO, force=True)
    code = asyncio.run(run(targets, logs))
    sys.stdout.flush()
    # The SDK's runtime can crash the interpreter at exit (sdk-python#300).
    os._exit(code)


if __name__ == "__main__":
    main()
