"""The figures of each chaos scenario, collected into chaos-summary.{json,md}."""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Collection
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from testkit.fake_resend import FakeResend

log = logging.getLogger("tests.chaos")


@dataclass
class Figures:
    """One scenario's outcome, as the lead quotes it."""

    scenario: str
    invites: int
    accepted: int
    delivered: int
    lost: int
    duplicates: int
    unaccepted_delivered: int
    api_503: int
    api_no_answer: int
    api_other_errors: int
    replayed_202: int
    provider_answers: dict[str, int]
    elapsed_s: float
    notes: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(
        cls, scenario: str, invites: int, fake: FakeResend, accepted: Collection[str],
        elapsed_s: float, notes: dict[str, Any], *, api_503: int = 0, api_no_answer: int = 0,
        api_other_errors: int = 0, replayed_202: int = 0,
    ) -> Figures:  # fmt: skip
        """The figures of a scenario whose API accepted the addresses `accepted`, counted
        against what the fake provider delivered to each address."""
        per_address = Counter(address for d in fake.deliveries for address in d.to)
        return cls(
            scenario=scenario,
            invites=invites,
            accepted=len(accepted),
            delivered=fake.delivered_count,
            lost=sum(1 for a in accepted if per_address[a] == 0),
            duplicates=sum(n - 1 for n in per_address.values() if n > 1) + len(fake.duplicates()),
            unaccepted_delivered=sum(1 for a in per_address if a not in accepted),
            api_503=api_503,
            api_no_answer=api_no_answer,
            api_other_errors=api_other_errors,
            replayed_202=replayed_202,
            provider_answers={str(s): n for s, n in sorted(fake.requests_by_status.items())},
            elapsed_s=round(elapsed_s, 1),
            notes=notes,
        )


COLUMNS = (
    ("scenario", "scenario"),
    ("invites", "invites"),
    ("accepted", "accepted"),
    ("delivered", "delivered"),
    ("lost", "lost"),
    ("duplicates", "dup"),
    ("unaccepted_delivered", "unaccepted delivered"),
    ("api_503", "503s"),
    ("api_no_answer", "no answer"),
    ("replayed_202", "replayed 202"),
    ("provider_answers", "provider answers"),
    ("elapsed_s", "elapsed s"),
    ("notes", "notes"),
)


@dataclass
class ChaosReport:
    """Collects every scenario's figures; rewrites the JSON and markdown files on each add."""

    directory: Path
    rows: list[Figures] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def add(self, figures: Figures) -> None:
        self.rows.append(figures)
        self.save()
        log.info("chaos figures: %s", json.dumps(asdict(figures)))

    def save(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "chaos-summary.json").write_text(
            json.dumps([asdict(r) for r in self.rows], indent=2)
        )
        (self.directory / "chaos-summary.md").write_text(self.markdown() + "\n")

    def markdown(self) -> str:
        def cell(row: Figures, name: str) -> str:
            value = getattr(row, name)
            if isinstance(value, dict):
                return " ".join(f"{k}:{v}" for k, v in sorted(value.items()))
            return f"{value:.1f}" if isinstance(value, float) else str(value)

        lines = [
            "| " + " | ".join(title for _, title in COLUMNS) + " |",
            "|" + "---|" * len(COLUMNS),
        ]
        lines += ["| " + " | ".join(cell(r, n) for n, _ in COLUMNS) + " |" for r in self.rows]
        return "\n".join(lines)
