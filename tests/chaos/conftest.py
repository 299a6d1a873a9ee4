"""Chaos fixtures: a factory of whole stacks (each scenario owns its processes, see
`stack.py`) and the session's report of figures, printed at the end of the run.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from .report import ChaosReport
from .stack import StackFactory


@pytest.fixture
async def stack_factory(tmp_path: Path) -> AsyncIterator[StackFactory]:
    factory = StackFactory(tmp_path)
    try:
        yield factory
    finally:
        await factory.close()


REPORT = pytest.StashKey[ChaosReport]()


@pytest.fixture(scope="session")
def chaos_report(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ChaosReport]:
    report = ChaosReport(tmp_path_factory.getbasetemp())
    request.config.stash[REPORT] = report
    yield report


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    report = config.stash.get(REPORT, None)
    if report is None or not report.rows:
        return
    terminalreporter.write_sep("=", "chaos figures")
    for line in report.markdown().splitlines():
        terminalreporter.write_line(line)
    terminalreporter.write_line(f"summary files: {report.directory}/chaos-summary.{{json,md}}")
