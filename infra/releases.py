"""Released versions of durable-mail and the commit each was built from.

Recorded histories of a released version live in `tests/histories/archive/<version>/` and
replay against that version's code, checked out from git at its commit (`make
replay-archive VERSION=...`). Histories recorded by the current code live in
`tests/histories/` and replay against this checkout (`make replay`).
"""

from __future__ import annotations

# The last release before 1.0: unversioned workers, `workflow.patched` branches.
RELEASES = {"0.1.0": "a01e8033b00fe829d10db59f52b1835e2796057d"}
PREVIOUS_RELEASE = "0.1.0"
