"""Refresh tests/module_seconds.json (the order tests/conftest.py deals modules to xdist workers).

Reads a JUnit report of a whole-suite run and writes the seconds each test module took (setup,
call and teardown of its tests), rounded, longest first. Usage:
    .venv/bin/pytest -n 4 --dist loadfile --junitxml=reports/junit.xml
    .venv/bin/python scripts/module_seconds.py reports/junit.xml
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _module(classname: str) -> str | None:
    parts = classname.split(".")
    for end in range(len(parts), 0, -1):  # "tests.x.test_y" or "tests.x.test_y.TestClass"
        path = "/".join(parts[:end]) + ".py"
        if (ROOT / path).is_file():
            return path
    return None


def main(report: str) -> int:
    seconds: dict[str, float] = defaultdict(float)
    for case in ET.parse(report).getroot().iter("testcase"):  # noqa: S314 - our own pytest run's report
        module = _module(case.get("classname", ""))
        if module is not None:
            seconds[module] += float(case.get("time", "0") or 0)
    table = {m: round(s, 1) for m, s in sorted(seconds.items(), key=lambda kv: -kv[1]) if s >= 0.5}
    out = ROOT / "tests" / "module_seconds.json"
    out.write_text(json.dumps(table, indent=1) + "\n", encoding="utf-8")
    print(f"{out.relative_to(ROOT)}: {len(table)} modules, {sum(seconds.values()):.0f} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
