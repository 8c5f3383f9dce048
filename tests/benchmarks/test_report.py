"""The benchmark report's table, JSON Lines and exit status, on rows from a stand-in module (no load is run)."""

from __future__ import annotations

import importlib
import json
import sys
import types
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture
def report(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    monkeypatch.syspath_prepend(str(BENCH))
    module = importlib.import_module("report")
    rows = importlib.import_module("_rows")
    fake = types.ModuleType("bench_fake")
    calls: list[float] = []

    def report_rows(scale: float) -> list[object]:
        calls.append(scale)
        n = len(calls)
        return [
            rows.Row("x.send", "send", figure=100.0 + n, unit="msg/s", baseline_name="floor", baseline=100.0, goal=1.0),
            rows.Row("x.mem", "memory", figure=70.0, unit="KiB/BAL", goal=60.0, higher_is_better=False),
        ]

    fake.report_rows = report_rows  # type: ignore[attr-defined]
    fake.calls = calls  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "bench_fake", fake)
    monkeypatch.setattr(module, "MODULES", ["bench_fake"])
    return module


def test_json_lines(report: types.ModuleType, capsys: pytest.CaptureFixture[str], tmp_path: Path,
                    monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "bench_fake.py").write_text("")  # the report only lists modules present on disk
    monkeypatch.setattr(report, "HERE", tmp_path)
    status = report.main(["--json", "--rounds", "3", "--scale", "0.5"])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sys.modules["bench_fake"].calls == [0.5, 0.5, 0.5]  # type: ignore[attr-defined]
    send, mem = lines
    assert send["figure"] == 102.0 and send["baseline"] == 100.0  # median of 101, 102, 103
    assert send["ratio"] == pytest.approx(1.02) and send["met"] is True
    assert mem["met"] is False and mem["ratio"] is None
    assert status == 1  # one goal missed


def test_table(report: types.ModuleType, capsys: pytest.CaptureFixture[str], tmp_path: Path,
               monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "bench_fake.py").write_text("")
    monkeypatch.setattr(report, "HERE", tmp_path)
    assert report.main([]) == 1
    out = capsys.readouterr().out
    assert "| send" in out and "1.01×" in out and "≥ 1×" in out and "≤ 60 KiB/BAL" in out and "NO" in out


def test_failing_benchmark_exits_2(report: types.ModuleType, capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "bench_fake.py").write_text("")
    monkeypatch.setattr(report, "HERE", tmp_path)

    def broken(scale: float) -> list[object]:
        raise RuntimeError("server did not start")

    monkeypatch.setattr(sys.modules["bench_fake"], "report_rows", broken)
    assert report.main(["--json"]) == 2
    last = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert last == {"key": "bench_fake", "error": "benchmark failed to run"}
