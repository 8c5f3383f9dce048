"""One row of the benchmark report: a figure, the baseline measured in the same run, the ratio, the goal.

Every benchmark that takes part in ``benchmarks/report.py`` exposes::

    def report_rows(scale: float = 1.0) -> list[Row]: ...

``scale`` 1.0 is the small default (the whole report stays within a few minutes on a 2-core machine);
larger scales approach the issue's sizes. Each function starts and stops what it needs (servers in
other processes, temporary directories) and sends traffic to 127.0.0.1 only.
"""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class Row:
    """One measured figure against its same-run baseline.

    ``higher_is_better`` says how to read the ratio: for throughput the ratio is figure / baseline and the
    goal is a floor (``ratio >= goal``); for costs (memory, latency) the goal is a ceiling on ``figure``
    itself, and ``baseline`` may be ``None`` when the issue states an absolute bound.
    """

    key: str  # stable id, e.g. "send.sandbox"
    what: str  # human label, e.g. "send 1,000 messages (sandbox)"
    figure: float
    unit: str  # e.g. "msg/s", "KiB/BAL"
    baseline_name: str | None = None
    baseline: float | None = None
    goal: float | None = None  # ratio floor when higher_is_better, else ceiling on figure
    higher_is_better: bool = True
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.baseline in (None, 0):
            return None
        return self.figure / self.baseline  # type: ignore[operator]

    @property
    def met(self) -> bool | None:
        if self.goal is None:
            return None
        if self.higher_is_better:
            r = self.ratio
            return None if r is None else r >= self.goal
        return self.figure <= self.goal

    def as_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["ratio"] = self.ratio
        d["met"] = self.met
        return d
