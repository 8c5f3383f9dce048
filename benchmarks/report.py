"""The performance report: every benchmark that joins it, one table (or JSON Lines), ratios against same-run baselines.

Run: ``python benchmarks/report.py [--scale S] [--json] [--only KEY_PREFIX ...] [--rounds N]``

Each participating module exposes ``report_rows(scale) -> list[Row]`` (see ``benchmarks/_rows.py``); it
starts what it measures in other processes and talks to 127.0.0.1 only. ``--rounds`` repeats every
benchmark and reports, per row, the median figure and the median baseline of the rounds (the rounds of
different benchmarks are interleaved, so a burst of load on the machine does not land on one of them only).

Exit status: 0 when every row with a goal meets it, 1 when one misses it, 2 when a benchmark failed to run.
"""

from __future__ import annotations

import argparse
import importlib
import json
import statistics
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

from _rows import Row  # noqa: E402

# Modules in report order; a module that is missing or has no report_rows is listed as not participating.
MODULES = [
    "bench_send",
    "bench_fetch",
    "bench_watch",
    "bench_client",
    "bench_dns",
    "bench_xdm",
    "bench_bridge",
    "bench_fleet",
]


def _participants() -> list[tuple[str, object]]:
    found = []
    for name in MODULES:
        if not (HERE / f"{name}.py").exists():
            continue
        module = importlib.import_module(name)
        fn = getattr(module, "report_rows", None)
        if fn is None:
            continue
        found.append((name, fn))
    return found


def _median_row(rows: list[Row]) -> Row:
    first = rows[0]
    baselines = [r.baseline for r in rows if r.baseline is not None]
    return Row(
        key=first.key,
        what=first.what,
        figure=statistics.median(r.figure for r in rows),
        unit=first.unit,
        baseline_name=first.baseline_name,
        baseline=statistics.median(baselines) if baselines else None,
        goal=first.goal,
        higher_is_better=first.higher_is_better,
        extra={"rounds": len(rows), "figures": [r.figure for r in rows],
               "baselines": [r.baseline for r in rows]},
    )


def _fmt(value: float | None) -> str:
    if value is None:
        return "—"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}"


def _table(rows: list[Row]) -> str:
    head = ("figure", "ours", "baseline (same run)", "ratio", "goal", "met")
    lines = [head]
    for r in rows:
        base = f"{r.baseline_name}: {_fmt(r.baseline)}" if r.baseline_name else "—"
        if r.goal is None:
            goal = "—"
        elif r.higher_is_better:
            goal = f"≥ {r.goal:g}×"
        else:
            goal = f"≤ {r.goal:g} {r.unit}"
        met = {True: "yes", False: "NO", None: "—"}[r.met]
        ratio = "—" if r.ratio is None else f"{r.ratio:.2f}×"
        lines.append((f"{r.what}", f"{_fmt(r.figure)} {r.unit}", base, ratio, goal, met))
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    out = []
    for n, line in enumerate(lines):
        out.append("| " + " | ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)) + " |")
        if n == 0:
            out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="size factor (1.0 = small default)")
    parser.add_argument("--json", action="store_true", help="one JSON object per row on stdout")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds; medians are reported")
    parser.add_argument("--only", nargs="*", default=[], help="run only modules whose name contains one of these")
    args = parser.parse_args(argv)

    participants = _participants()
    if args.only:
        participants = [(n, f) for n, f in participants if any(o in n for o in args.only)]
    per_key: dict[str, list[Row]] = {}
    order: list[str] = []
    failed: list[str] = []
    for round_no in range(args.rounds):
        for name, fn in participants:
            if name in failed:
                continue
            started = time.monotonic()
            print(f"[report] round {round_no + 1}/{args.rounds}: {name} …", file=sys.stderr, flush=True)
            try:
                rows = fn(args.scale)  # type: ignore[operator]
            except Exception:  # a benchmark that cannot run is reported, the others go on
                traceback.print_exc()
                failed.append(name)
                continue
            print(f"[report] {name}: {time.monotonic() - started:.1f} s", file=sys.stderr, flush=True)
            for row in rows:
                if row.key not in per_key:
                    order.append(row.key)
                per_key.setdefault(row.key, []).append(row)
    final = [_median_row(per_key[k]) for k in order]
    if args.json:
        for row in final:
            print(json.dumps(row.as_json(), ensure_ascii=False))
        for name in failed:
            print(json.dumps({"key": name, "error": "benchmark failed to run"}))
    else:
        print(_table(final))
        for name in failed:
            print(f"\n{name}: failed to run (traceback above)")
    if failed:
        return 2
    return 1 if any(r.met is False for r in final) else 0


if __name__ == "__main__":
    sys.exit(main())
