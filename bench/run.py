"""Benchmark durable-mail against the designs our users came from, on this machine.

    python -m bench.run                      # everything, ~10 minutes on 2 cores
    python -m bench.run --quick              # a smaller version (~3 minutes), a smoke test
    python -m bench.run --quick --only baselines

Writes bench/results/<timestamp>/{results.json,results.md,chart.png,logs/} and prints the
markdown. Every process it starts runs on 127.0.0.1 and is stopped by PID at the end.

What runs is data (`bench/scenarios.py`), carried out by `bench/runners.py`; the targets are
computed in `bench/targets.py` and rendered by `bench/report.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import time
from dataclasses import asdict, replace
from datetime import datetime
from functools import partial
from pathlib import Path

import psutil

from bench import coalesce, runners
from bench.measure import log
from bench.report import chart, markdown
from bench.runners import Bench
from bench.scenarios import FULL, GROUPS, QUICK, Plan
from bench.stack import STARTED, kill_all, stop_all
from bench.targets import targets
from testkit.fake_resend import FakeResendProcess
from testkit.procs import ROOT

COALESCE_MD = "coalesce.md"


async def run(
    plan: Plan, out_dir: Path, *, quick: bool, server_args: list[str], only: set[str]
) -> int:
    """Run the chosen groups and write the results; 1 if any group failed."""
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    loadavg_before = os.getloadavg()
    fake = await FakeResendProcess.start(out_dir / "logs", latency=plan.latency)
    STARTED.append(fake.proc)
    bench = Bench(plan, out_dir, fake, server_args)
    try:
        if "baselines" in only:
            await runners.baselines(bench)
        if only - {"baselines", "coalesce"}:
            await bench.guarded("temporal", partial(runners.our_stack, bench, only))
    finally:
        await fake.close()
        await stop_all()
    if "coalesce" in only:
        # Its own provider (2 requests/s) and dev server: single vs coalesced vs batch.
        await bench.guarded("coalesce", partial(coalesce_group, bench, quick))
    elapsed = time.perf_counter() - started
    extra_args = f"dev server extra args `{' '.join(server_args)}`; " * bool(server_args)
    header = (
        f"# durable-mail benchmark ({'quick' if quick else 'full'}, "
        f"{datetime.now().isoformat(timespec='seconds')})\n\n"
        f"{platform.platform()}, {psutil.cpu_count() or 0} CPUs, "
        f"Python {platform.python_version()}; "
        f"provider latency {plan.latency:g} s; groups: {', '.join(sorted(only))}; "
        f"{extra_args}took {elapsed:.0f} s. Load average before {loadavg_before[0]:.1f}, "
        f"after {os.getloadavg()[0]:.1f} (other work on the machine skews every figure: "
        "see *others* in the CPU column).\n"
    )
    write(bench, header, elapsed)
    return 1 if bench.errors else 0


async def coalesce_group(bench: Bench, quick: bool) -> None:
    args = coalesce.arguments().parse_args([])
    if quick:
        args.invites, args.single, args.seed_invites = 200, 20, 50
    try:
        lines = await coalesce.measure(args, bench.out_dir / "logs" / "coalesce")
    finally:
        await stop_all()
    (bench.out_dir / COALESCE_MD).write_text("\n".join(lines) + "\n")
    bench.extra["coalescing at 2 requests/s"] = f"the table below (also in {COALESCE_MD})"


def write(bench: Bench, header: str, elapsed: float) -> None:
    found = targets(bench.plan, bench.runs, bench.probes)
    md = markdown(bench.runs, found, bench.extra, bench.errors, header)
    coalesced = bench.out_dir / COALESCE_MD
    if coalesced.exists():
        md += "\n## Coalescing at 2 requests/s (`bench/coalesce.py`)\n\n" + coalesced.read_text()
    (bench.out_dir / "results.md").write_text(md)
    payload = {
        "plan": asdict(bench.plan),
        "runs": [r.as_json() for r in bench.runs],
        "targets": [asdict(t) | {"met": t.met} for t in found],
        "probes": bench.probes,
        "extra": bench.extra,
        "errors": bench.errors,
        "elapsed_s": elapsed,
    }
    (bench.out_dir / "results.json").write_text(json.dumps(payload, indent=2, default=str))
    if bench.runs:
        try:
            chart(bench.runs, bench.out_dir / "chart.png", header.splitlines()[0].lstrip("# "))
        except Exception as exc:
            bench.errors.append(f"chart: {exc}")
    print(md, flush=True)
    log(f"results in {bench.out_dir}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, a smoke test")
    parser.add_argument(
        "--only",
        default=",".join(GROUPS),
        help=f"comma-separated groups among {', '.join(GROUPS)} (default: all)",
    )
    parser.add_argument("--latency", type=float, default=None, help="provider latency, s")
    parser.add_argument("--out", type=Path, default=None, help="results directory")
    parser.add_argument(
        "--server-arg",
        action="append",
        default=[],
        help="extra `temporal server start-dev` argument (repeatable), e.g. "
        "--server-arg=--dynamic-config-value --server-arg=matching.numTaskqueueReadPartitions=1",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    only = {g.strip() for g in args.only.split(",") if g.strip()}
    unknown = only - set(GROUPS)
    if unknown:
        raise SystemExit(f"unknown group(s): {', '.join(sorted(unknown))}")
    plan = QUICK if args.quick else FULL
    if args.latency is not None:
        plan = replace(plan, latency=args.latency)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out_dir = args.out or ROOT / "bench" / "results" / (stamp + ("-quick" if args.quick else ""))
    code = 1
    try:
        code = asyncio.run(
            run(plan, out_dir, quick=args.quick, server_args=args.server_arg, only=only)
        )
    finally:
        kill_all()
        sys.stdout.flush()
        sys.stderr.flush()
        # The Temporal client's runtime can crash the interpreter at exit (sdk-python#300).
        os._exit(code)


if __name__ == "__main__":
    main()
