"""Turn a run's results into `results.md` (tables and target ratios) and `chart.png`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.measure import RunResult
from bench.targets import Target


def _num(value: float | int | None, digits: int = 0) -> str:
    if value is None:
        return "–"
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


def _procs(run: RunResult) -> str:
    order = ["api", "worker", "temporal_server", "fake", "loadgen", "others"]
    names = sorted(run.procs, key=lambda n: (order.index(n) if n in order else 99, n))
    short = {"temporal_server": "server"}
    return " · ".join(
        f"{short.get(n, n)} {run.procs[n].cpu_load:.0f}%"
        + ("" if n == "others" else f"/{run.procs[n].rss_max_mb:.0f}")
        for n in names
    )


def _errors(run: RunResult) -> str:
    """`0`, or e.g. `61 (429)`, `95 (timeout)`."""
    if run.sent == run.accepted:
        return "0"
    kinds = ", ".join(f"{n}×{kind}" for kind, n in run.client_errors.items())
    return f"{run.sent - run.accepted} ({kinds})" if kinds else str(run.sent - run.accepted)


RUN_HEADER = (
    "| system | scenario | sent | 2xx | errors | p50 | p90 | p99 | max | accepted/s "
    "| delivered | lost | dup | delivered/s | a→s p50 | a→s p99 | flat | CPU % / RSS MB |\n"
    "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|:-:|---|\n"
)


def run_row(run: RunResult) -> str:
    flat = {True: "yes", False: "no", None: ""}[run.sustainable]
    cells = [
        run.system,
        run.scenario + (" 💥" if run.crashed else ""),
        str(run.sent),
        str(run.accepted),
        _errors(run),
        _num(run.api_p50_ms, 1),
        _num(run.api_p90_ms, 1),
        _num(run.api_p99_ms, 1),
        _num(run.api_max_ms, 0),
        _num(run.accepted_per_s, 1),
        _num(run.delivered),
        _num(run.lost),
        _num(run.duplicates),
        _num(run.delivered_per_s, 1),
        _num(run.accept_to_send_p50_ms, 0),
        _num(run.accept_to_send_p99_ms, 0),
        flat,
        _procs(run),
    ]
    return "| " + " | ".join(cells) + " |\n"


def markdown(
    runs: list[RunResult],
    targets: list[Target],
    extra: dict[str, Any],
    errors: list[str],
    header: str,
) -> str:
    out = [header, "\n## Runs\n\n"]
    out.append(
        "Latencies in ms (API: from the request's due time to its answer; a→s: client send "
        "to the fake provider receiving the email). *lost* = answered 2xx but never received "
        "by the provider by the end of the drain window (the process is stopped after it). "
        "*flat* = open loop kept up: ≥99% accepted, p99 ≤ 1 s, deliveries ≥ 95% of "
        "acceptances over the second half. 💥 = a process was SIGKILLed mid-run and "
        "restarted. CPU: % of one core, mean while the load ran (*others*: every process on "
        "the machine this run did not start); RSS: peak MB.\n\n"
    )
    out.append(RUN_HEADER)
    out.extend(run_row(run) for run in runs)
    crashed = [r for r in runs if r.crashed]
    if crashed:
        out.append("\nCrashes: " + "; ".join(f"{r.system}: {r.crashed}" for r in crashed) + "\n")
    if targets:
        out.append("\n## Targets (ratio ≥ 1 means met)\n\n")
        out.append("| target | measured | goal | ratio | met |\n|---|---|---|--:|:-:|\n")
        for t in targets:
            ratio = "–" if t.ratio is None else f"{t.ratio:.2f}"
            note = f" ({t.note})" if t.note else ""
            out.append(f"| {t.name} | {t.measured}{note} | {t.goal} | {ratio} | {t.met} |\n")
    if extra:
        out.append("\n## Other measurements\n\n")
        for key, value in extra.items():
            out.append(f"- **{key}**: {value}\n")
    if errors:
        out.append("\n## Problems during the run\n\n")
        out.extend(f"- {e}\n" for e in errors)
    return "".join(out)


def chart(runs: list[RunResult], path: Path, title: str) -> None:
    """Four panels a person can read: latency, throughput, latency vs rate, crash losses."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(15, 10))
    fig.suptitle(title)
    closed = [r for r in runs if r.scenario.startswith("closed")]
    systems = [r.system for r in closed]
    xs = range(len(closed))

    ax = axes[0][0]
    width = 0.27
    for i, (label, key) in enumerate(
        [("p50", "api_p50_ms"), ("p90", "api_p90_ms"), ("p99", "api_p99_ms")]
    ):
        values = [getattr(r, key) or 0.0 for r in closed]
        ax.bar([x + (i - 1) * width for x in xs], values, width, label=label)
    ax.set_yscale("log")
    ax.set_xticks(list(xs), systems, rotation=20, ha="right")
    ax.set_ylabel("API latency, ms (log)")
    ax.set_title(closed[0].scenario if closed else "closed loop")
    ax.legend()

    ax = axes[0][1]
    width = 0.4
    accepted = [r.accepted_per_s for r in closed]
    delivered = [r.delivered_per_s or 0.0 for r in closed]
    ax.bar([x - width / 2 for x in xs], accepted, width, label="accepted/s")
    ax.bar([x + width / 2 for x in xs], delivered, width, label="delivered/s (end to end)")
    for x, a, d in zip(xs, accepted, delivered, strict=True):
        for value, dx in ((a, -width / 2), (d, width / 2)):
            if value:
                label = f"{value:.0f}" if value >= 10 else f"{value:.1f}"
                ax.annotate(label, (x + dx, value), ha="center", va="bottom", fontsize=8)
    ax.set_yscale("log")
    ax.set_xticks(list(xs), systems, rotation=20, ha="right")
    ax.set_ylabel("per second (log)")
    ax.set_title("throughput, same closed loop")
    ax.legend()

    ax = axes[1][0]
    by_system: dict[str, list[RunResult]] = {}
    for r in runs:
        if r.kind == "open" and r.scenario.startswith("open") and r.offered_rate:
            by_system.setdefault(r.system, []).append(r)
    for system, series in by_system.items():
        series.sort(key=lambda r: r.offered_rate or 0.0)
        ax.plot(
            [r.offered_rate for r in series],
            [r.api_p99_ms or 0.0 for r in series],
            marker="o",
            label=system,
        )
        for r in series:
            if r.sustainable is False:
                ax.plot([r.offered_rate], [r.api_p99_ms or 0.0], "x", color="red", markersize=10)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("offered rate, invites/s (open loop; red x = not sustained)")
    ax.set_ylabel("API p99, ms (log)")
    ax.set_title("open loop: p99 vs offered rate")
    ax.legend(fontsize=8)

    ax = axes[1][1]
    crashes = [r for r in runs if r.crashed or r.scenario.startswith("flaky")]
    cx = range(len(crashes))
    ax.bar([x - width / 2 for x in cx], [r.accepted for r in crashes], width, label="2xx")
    ax.bar(
        [x + width / 2 for x in cx],
        [r.lost or 0 for r in crashes],
        width,
        label="lost",
        color="tab:red",
    )
    for x, r in zip(cx, crashes, strict=True):
        ax.annotate(str(r.lost or 0), (x + width / 2, r.lost or 0), ha="center", va="bottom")
    labels = [f"{r.system}\n{'crash' if r.crashed else 'flaky'}" for r in crashes]
    ax.set_xticks(list(cx), labels, rotation=20, ha="right", fontsize=8)
    ax.set_title("SIGKILL mid-run (crash) or 5xx from the provider (flaky): 2xx vs lost")
    ax.legend()

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
