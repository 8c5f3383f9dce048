"""Each test module's seconds in a whole-suite run: the timeline of the xdist workers, and the
per-module times tests/conftest.py deals modules to the workers by (tests/module_seconds.json).

Reads a JUnit report of a whole-suite run (scripts/test.sh writes reports/junit.xml). Each test of an
xdist run carries its worker, the time its setup started and its CPU seconds (tests/conftest.py), so a
module's time is its wall time on its worker, from its first test's setup to its last test's teardown
(without them, the sum of its tests' times), and its CPU seconds are those of its worker and of the
subprocesses its tests waited for. Usage:
    .venv/bin/python scripts/module_seconds.py reports/junit.xml     # print the timeline
    .venv/bin/python scripts/module_seconds.py --write A.xml [B.xml…]
        # and refresh the JSON with each module's mean time over the reports
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Modules shorter than this are left out of the JSON (tests/conftest.py weighs them 0.1 s per test).
SHORTEST = 0.5
#: Modules shorter than this are summed, not listed, in the printed timeline.
SHOWN = 5.0


@dataclass
class Module:
    path: str
    worker: str = ""
    start: float | None = None
    end: float | None = None
    summed: float = 0.0
    cpu: float = 0.0
    tests: int = 0
    failed: int = 0
    workers: set[str] = field(default_factory=set)

    @property
    def seconds(self) -> float:
        if self.start is not None and self.end is not None:
            return self.end - self.start
        return self.summed


def _module(classname: str) -> str | None:
    parts = classname.split(".")
    for end in range(len(parts), 0, -1):  # "tests.x.test_y" or "tests.x.test_y.TestClass"
        path = "/".join(parts[:end]) + ".py"
        if (ROOT / path).is_file():
            return path
    return None


def read(report: str) -> dict[str, Module]:
    """The modules of a JUnit report, with their worker and wall time when the report has them."""
    modules: dict[str, Module] = {}
    for case in ET.parse(report).getroot().iter("testcase"):  # noqa: S314 - our own pytest run's report
        path = _module(case.get("classname", ""))
        if path is None:
            continue
        module = modules.setdefault(path, Module(path))
        took = float(case.get("time", "0") or 0)
        module.summed += took
        module.tests += 1
        module.failed += case.find("failure") is not None or case.find("error") is not None
        props = {p.get("name"): p.get("value", "") for p in case.iter("property")}
        module.cpu += float(props.get("cpu", "0") or 0)
        if "started" in props and "xdist_worker" in props:
            started = float(props["started"])
            module.workers.add(props["xdist_worker"])
            module.worker = props["xdist_worker"]
            module.start = started if module.start is None else min(module.start, started)
            module.end = started + took if module.end is None else max(module.end, started + took)
    return modules


def timeline(modules: dict[str, Module]) -> str:
    """Each worker's modules in the order they ran (start offset, seconds) and its idle tail."""
    timed = [m for m in modules.values() if m.start is not None and m.end is not None]
    if not timed:
        return "no worker timeline in this report (not an xdist run with tests/conftest.py's stamps)"
    t0 = min(m.start for m in timed if m.start is not None)
    t1 = max(m.end for m in timed if m.end is not None)
    cpu = sum(m.cpu for m in timed)
    lines = [f"pytest's tests: {t1 - t0:.0f} s from the first setup to the last teardown, "
             f"{sum(m.seconds for m in timed):.0f} s of modules on the workers, {cpu:.0f} CPU s in the modules"]
    by_worker: dict[str, list[Module]] = defaultdict(list)
    for module in timed:
        by_worker[module.worker].append(module)
    for worker in sorted(by_worker, key=lambda w: int(w.removeprefix("gw")) if w[2:].isdigit() else 0):
        ran = sorted(by_worker[worker], key=lambda m: m.start or 0.0)
        busy = sum(m.seconds for m in ran)
        end = max(m.end for m in ran if m.end is not None)
        lines.append(f"{worker}: {len(ran)} modules, {busy:.0f} s of tests ({sum(m.cpu for m in ran):.0f} CPU s), "
                     f"last teardown at {end - t0:.0f} s, idle for the last {t1 - end:.0f} s")
        small, small_cpu, count = 0.0, 0.0, 0
        for module in ran:
            if module.seconds < SHOWN:
                small, small_cpu, count = small + module.seconds, small_cpu + module.cpu, count + 1
                continue
            if count:
                lines.append(f"    {'':>6}  {small:6.1f} s  {small_cpu:6.1f} CPU s  ({count} shorter modules)")
                small, small_cpu, count = 0.0, 0.0, 0
            mark = " FAILED" if module.failed else ""
            lines.append(f"    {(module.start or 0.0) - t0:6.1f}  {module.seconds:6.1f} s  {module.cpu:6.1f} CPU s  "
                         f"{module.path}{mark}")
        if count:
            lines.append(f"    {'':>6}  {small:6.1f} s  {small_cpu:6.1f} CPU s  ({count} shorter modules)")
    return "\n".join(lines)


def write(runs: list[dict[str, Module]]) -> str:
    """Refresh tests/module_seconds.json with each module's mean time over ``runs`` (longest first).

    What was written, in one line.
    """
    times: dict[str, list[float]] = defaultdict(list)
    for modules in runs:
        for module in modules.values():
            times[module.path].append(module.seconds)
    means = {path: sum(seconds) / len(seconds) for path, seconds in times.items()}
    table = {path: round(s, 1) for path, s in sorted(means.items(), key=lambda kv: -kv[1]) if s >= SHORTEST}
    out = ROOT / "tests" / "module_seconds.json"
    out.write_text(json.dumps(table, indent=1) + "\n", encoding="utf-8")
    return f"{out.relative_to(ROOT)}: {len(table)} modules, {sum(table.values()):.0f} s in all"


def main(argv: list[str]) -> int:
    refresh = "--write" in argv
    reports = [a for a in argv if a != "--write"]
    if not reports or (len(reports) > 1 and not refresh):
        print(__doc__, file=sys.stderr)
        return 2
    runs = [read(report) for report in reports]
    for report, modules in zip(reports, runs, strict=True):
        print(f"{report}:" if len(reports) > 1 else "", timeline(modules), sep="\n" if len(reports) > 1 else "")
    if refresh:
        print(write(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
