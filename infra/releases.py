"""Released versions of durable-mail and the commit each was built from.

Recorded histories of a released version live in `tests/histories/archive/<version>/` and
replay against that version's code, checked out from git at its commit (`make
replay-archive VERSION=...`, which runs `python -m infra.releases replay VERSION`).
Histories recorded by the current code live in `tests/histories/` and replay against this
checkout (`make replay`).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

RELEASES = {
    # The last release before 1.0: unversioned workers, `workflow.patched` branches.
    "0.1.0": "a01e8033b00fe829d10db59f52b1835e2796057d",
    # 1.0: Worker Deployment Versions, the one delivery loop. Its SendEmail and SendBatch
    # histories are archived (1.1 changed their commands; they are Pinned, so 1.0's own
    # workers finish them); its invite histories stay in tests/histories/ and replay on the
    # current code (the invite is Auto-Upgrade: 1.1's changes are behind patches).
    "1.0.0": "749f18db3a9c80ce8d2f6034f7d1e6df34b9c00d",
    # 1.1: webhook endpoints, suppressions, SMTP and failover, coalescing (off by default).
    # Its recordings stay in tests/histories/: 1.2 changed no command of SendEmail, SendBatch
    # or the invite (the Coalescer, changed, had none recorded).
    "1.1.0": "6cf98ffcef89f0993a710bcae3201feee854b5f7",
}
PREVIOUS_RELEASE = "1.0.0"

ROOT = Path(__file__).resolve().parent.parent
ARCHIVE = ROOT / "tests" / "histories" / "archive"


class ReleaseNotFound(RuntimeError):
    """The release's commit is not in this clone (a shallow clone: `git fetch --unshallow`)."""


def release_commit(version: str) -> str:
    """The commit of a released version, checked to be present in this clone."""
    if version not in RELEASES:
        raise ReleaseNotFound(f"unknown release {version!r}; known: {', '.join(RELEASES)}")
    commit = RELEASES[version]
    found = subprocess.run(
        ["git", "-C", str(ROOT), "cat-file", "-e", f"{commit}^{{commit}}"],
        capture_output=True,
        check=False,
    )
    if found.returncode != 0:
        raise ReleaseNotFound(
            f"release {version}'s commit {commit} is not in this clone (shallow? run "
            "`git fetch --unshallow`, or fetch that commit)"
        )
    return commit


@contextlib.contextmanager
def release_worktree(version: str) -> Iterator[Path]:
    """A detached git worktree of a released version in a temporary folder, removed after."""
    commit = release_commit(version)
    with tempfile.TemporaryDirectory(prefix=f"durable-mail-{version}-") as tmp:
        path = Path(tmp) / "src"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", "--quiet", str(path), commit],
            check=True,
        )
        try:
            yield path
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(path)],
                check=False,
            )
            subprocess.run(["git", "-C", str(ROOT), "worktree", "prune"], check=False)


def release_env(worktree: Path, env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment that runs a release's code with this venv's packages."""
    return {**(env or dict(os.environ)), "PYTHONPATH": str(worktree), "PYTHONUNBUFFERED": "1"}


def replay_archive(version: str, timeout: float = 600.0) -> subprocess.CompletedProcess[str]:
    """Replay `tests/histories/archive/<version>/` against that version's code from git
    (its own `infra.replay`, run with this venv's python, cwd and PYTHONPATH its worktree)."""
    folder = (ARCHIVE / version).resolve()
    if not folder.is_dir():
        raise FileNotFoundError(f"no archived histories for {version}: {folder}")
    with release_worktree(version) as worktree:
        return subprocess.run(
            [sys.executable, "-m", "infra.replay", str(folder)],
            cwd=worktree,
            env=release_env(worktree),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m infra.releases")
    sub = parser.add_subparsers(dest="command", required=True)
    replay = sub.add_parser("replay", help="replay an archived version's histories on its code")
    replay.add_argument("version", nargs="?", default=PREVIOUS_RELEASE)
    args = parser.parse_args()
    try:
        result = replay_archive(args.version)
    except (ReleaseNotFound, FileNotFoundError) as err:
        sys.exit(str(err))
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    sys.exit(result.returncode)


if __name__ == "__main__":
    main()
