"""`make dev` across a code change (scripts/dev.py): the build id follows workflows/ and
activities/, each build's source is snapshotted once, and on start a worker runs from every
earlier snapshot that still has open Pinned executions; drained ones are dropped."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

from temporalio.client import Client

from config import Settings, source_build_id
from testkit.polling import eventually
from tests.dev_builds_workflows import StaysOpen
from tests.helpers import ROOT, dev_script
from worker import VersionedWorker

dev = dev_script()


def checkout(tmp_path: Path) -> Path:
    """A copy of this checkout's code (what a snapshot needs), to edit."""
    root = tmp_path / "checkout"
    for folder in ("workflows", "activities"):
        shutil.copytree(ROOT / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("worker.py", "config.py"):
        shutil.copy(ROOT / name, root / name)
    (root / "tests").mkdir()
    (root / "tests" / "test_x.py").write_text("")
    (root / ".dev").mkdir()
    (root / ".dev" / "temporal.db").write_text("")
    return root


def test_build_id_follows_workflow_and_activity_code_only(tmp_path: Path) -> None:
    root = checkout(tmp_path)
    first = source_build_id(root)
    assert first == source_build_id(ROOT)
    (root / "worker.py").write_text("# not workflow code\n")
    assert source_build_id(root) == first
    with (root / "workflows" / "send_email.py").open("a") as source:
        source.write("\n# a change\n")
    changed = source_build_id(root)
    assert changed != first and changed.startswith("dev-")
    with (root / "activities" / "send.py").open("a") as source:
        source.write("\n# another\n")
    assert source_build_id(root) not in (first, changed)


def test_each_build_is_snapshotted_once_without_tests_or_dev_state(tmp_path: Path) -> None:
    root, builds = checkout(tmp_path), tmp_path / "builds"
    build_id, path = dev.snapshot_build(root, builds)
    assert path == builds / build_id
    assert (path / "worker.py").is_file() and (path / "workflows" / "send_email.py").is_file()
    assert not (path / "tests").exists() and not (path / ".dev").exists()
    (root / "worker.py").write_text("# edited after the snapshot\n")
    assert dev.snapshot_build(root, builds) == (build_id, path)
    assert (path / "worker.py").read_text() != "# edited after the snapshot\n"
    with (root / "workflows" / "send_email.py").open("a") as source:
        source.write("\n# a change\n")
    second, _ = dev.snapshot_build(root, builds)
    assert dev.earlier_builds(second, builds) == [build_id]
    assert dev.earlier_builds(build_id, builds) == [second]


def test_only_builds_with_open_pinned_work_run_again() -> None:
    open_counts = {"dev-a": 0, "dev-b": 3, "dev-c": 1}
    running, drained = dev.split_by_open_work(sorted(open_counts), open_counts.__getitem__)
    assert running == ["dev-b", "dev-c"]
    assert drained == ["dev-a"]


async def test_open_pinned_executions_are_counted_per_build(
    client: Client, settings: Settings
) -> None:
    deployment = f"dev-builds-{uuid.uuid4().hex[:8]}"
    pinned = settings.model_copy(
        update={"worker_deployment_name": deployment, "worker_build_id": "dev-one"}
    )
    address = client.service_client.config.target_host
    async with VersionedWorker(client, pinned, task_queue=pinned.task_queue, workflows=[StaysOpen]):
        handle = await client.start_workflow(
            StaysOpen.run, id=f"open-{uuid.uuid4().hex}", task_queue=pinned.task_queue
        )
        await eventually(
            lambda: dev.pinned_open_count(address, "dev-one", deployment) == 1,
            timeout=20,
            interval=0.5,
            what="the open execution counted on its build",
        )
        assert dev.pinned_open_count(address, "dev-other", deployment) == 0
        await handle.terminate()
    await eventually(
        lambda: dev.pinned_open_count(address, "dev-one", deployment) == 0,
        timeout=20,
        interval=0.5,
        what="the build drained",
    )
