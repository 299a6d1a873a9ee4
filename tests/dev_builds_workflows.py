"""A Pinned workflow that stays open, for tests/test_dev_builds.py (an importable module)."""

from __future__ import annotations

from temporalio import workflow
from temporalio.common import VersioningBehavior


@workflow.defn(name="DevBuildsOpen", versioning_behavior=VersioningBehavior.PINNED)
class StaysOpen:
    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)
