"""Each test module's seconds in a whole-suite run: the timeline of the xdist workers, and the
per-module times tests/conftest.py deals modules to the workers by (tests/module_seconds.json).

Reads a JUnit report of a whole-suite run (scripts/test.sh writes reports/junit.xml). Each test of an
xdist run carries its worker and the time its setup started (tests/conftest.py), so a module's time
is its wall time on its worker, from its first test's setup to its last test's teardown; without
them, the sum of its tests' times. Usage:
    .venv/bin/python scripts/module_seconds.py reports/junit.xml            # print the timeline
    .venv/bin/python scripts/module_seconds.py --write reports/junit.xml    # and refresh the JSON
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
    lines = [f"pytest's tests: {t1 - t0:.0f} s from the first setup to the last teardown"]
    by_worker: dict[str, list[Module]] = defaultdict(list)
    for module in timed:
        by_worker[module.worker].append(module)
    for worker in sorted(by_worker, key=lambda w: int(w.removeprefix("gw")) if w[2:].isdigit() else 0):
        ran = sorted(by_worker[worker], key=lambda m: m.start or 0.0)
        busy = sum(m.seconds for m in ran)
        end = max(m.end for m in ran if m.end is not None)
        lines.append(f"{worker}: {len(ran)} modules, {busy:.0f} s of tests, last teardown at {end - t0:.0f} s, "
                     f"idle for the last {t1 - end:.0f} s")
        small, count = 0.0, 0
        for module in ran:
            if module.seconds < SHOWN:
                small, count = small + module.seconds, count + 1
                continue
            if count:
                lines.append(f"    {'':>6}  {small:6.1f} s  ({count} shorter modules)")
                small, count = 0.0, 0
            mark = " FAILED" if module.failed else ""
            lines.append(f"    {(module.start or 0.0) - t0:6.1f}  {module.seconds:6.1f} s  {module.path}{mark}")
        if count:
            lines.append(f"    {'':>6}  {small:6.1f} s  ({count} shorter modules)")
    return "\n".join(lines)


def write(modules: dict[str, Module]) -> str:
    """Refresh tests/module_seconds.json (longest first); what was written, in one line."""
    table = {m.path: round(m.seconds, 1) for m in sorted(modules.values(), key=lambda m: -m.seconds)
             if m.seconds >= SHORTEST}
    out = ROOT / "tests" / "module_seconds.json"
    out.write_text(json.dumps(table, indent=1) + "\n", encoding="utf-8")
    return f"{out.relative_to(ROOT)}: {len(table)} modules, {sum(table.values()):.0f} s in all"


def main(argv: list[str]) -> int:
    refresh = "--write" in argv
    reports = [a for a in argv if a != "--write"]
    if len(reports) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    modules = read(reports[0])
    print(timeline(modules))
    if refresh:
        print(write(modules))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
