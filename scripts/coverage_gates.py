"""Fail when branch coverage of a package falls below its gate (pyproject: [tool.mssante.coverage-gates]).

Reads the JSON report pytest-cov wrote (``--cov-report=json:FILE``) and prints one line per gate.
Usage: python scripts/coverage_gates.py coverage.json
"""

from __future__ import annotations

import json
import sys
import tomllib
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(report_path: str) -> int:
    gates: dict[str, float] = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mssante"]["coverage-gates"]
    report = json.loads(Path(report_path).read_text())
    hit: dict[str, int] = defaultdict(int)
    total: dict[str, int] = defaultdict(int)
    for name, data in report["files"].items():
        parts = Path(name).with_suffix("").parts
        if "mssante" not in parts:
            continue
        module = ".".join(parts[parts.index("mssante"):])
        s = data["summary"]
        covered = s["covered_lines"] + s.get("covered_branches", 0)
        count = s["num_statements"] + s.get("num_branches", 0)
        for gate in gates:
            if gate == "mssante" or module == gate or module.startswith(gate + "."):
                hit[gate] += covered
                total[gate] += count
    failed = False
    for gate, floor in sorted(gates.items()):
        pct = 100.0 * hit[gate] / total[gate] if total[gate] else 0.0
        ok = pct >= floor
        failed |= not ok
        print(f"coverage {gate:<16} {pct:5.1f} %  (gate {floor:g} %)  {'ok' if ok else 'BELOW THE GATE'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "coverage.json"))
