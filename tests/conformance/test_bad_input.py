"""Bad input gives a clear French message, a non-zero exit, and no report claiming more than was judged:
an unknown case, a stale ``sandbox.json``, a sandbox that stops mid-run, an LPS that never acts."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from mssante.cli._conformance import conformance
from mssante.conformance import ExternalDriver, InProcessControl, Profile, Status, catalogue, run_job
from mssante.errors import ConfigError, UsageError
from mssante.sandbox.runner import Sandbox
from mssante.testing import FakeClock
from tests.conformance._harness import RED, sandbox_config
from tests.conformance._separate import separate_sandbox

pytestmark = pytest.mark.slow


def _main(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mssante", *args], capture_output=True, text=True, timeout=120)


def test_unknown_case_is_a_french_usage_error_before_anything_starts(tmp_path: Path) -> None:
    state = tmp_path / "state"
    out = _main("conformance", "run", "--profile", "app", "--sandbox-state", str(state), "--case", "PERORG-01",
                "--case", "no-such-case")
    assert out.returncode == 2
    assert "cas inconnus pour le profil app : PERORG-01, no-such-case" in out.stderr
    assert "APP-01" in out.stderr and "Traceback" not in out.stderr
    assert not state.exists(), "nothing may start (no sandbox, no report) on a misuse"
    result = CliRunner().invoke(conformance, ["run", "--profile", "app", "--sandbox-state", str(state),
                                              "--case", "x"])
    assert isinstance(result.exception, UsageError) and result.exception.exit_code == 2


def test_stale_sandbox_json_is_refused_in_french(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    state = tmp_path / "state"
    state.mkdir()
    (state / "sandbox.json").write_text(json.dumps({"api_url": f"http://127.0.0.1:{port}/api"}), encoding="utf-8")
    out = _main("conformance", "run", "--profile", "per-org", "--sandbox-state", str(state))
    assert out.returncode == 2
    assert "ne répond pas" in out.stderr and "mssante sandbox up --state-dir" in out.stderr
    assert not (state / "conformance").exists()
    (state / "sandbox.json").write_text("{", encoding="utf-8")
    result = CliRunner().invoke(conformance, ["run", "--profile", "app", "--sandbox-state", str(state)])
    assert isinstance(result.exception, ConfigError) and "illisible" in str(result.exception)


def test_a_sandbox_that_stops_mid_run_ends_the_run_incomplete(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    events_file = tmp_path / "events.jsonl"
    with separate_sandbox(state) as sb:
        run = subprocess.Popen(
            [sys.executable, "-m", "mssante", "conformance", "run", "--profile", "app", "--sandbox-state",
             str(state), "--case", "x-mss-nil", "--case", "x-mss-ins", "--case", "sent-copy",
             "--time-scale", "0.005", "--events", str(events_file)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while '"type":"verdict"' not in (events_file.read_text() if events_file.exists() else ""):
            assert time.monotonic() < deadline and run.poll() is None, run.communicate()
            time.sleep(0.05)
        sb.proc.send_signal(signal.SIGINT)  # the operator stops the sandbox during the second case
        sb.proc.wait(timeout=20)
        out, err = run.communicate(timeout=120)
    assert run.returncode == 1, out + err
    assert "Le bac à sable ne répond plus" in out and "NON CONFORME" in out
    assert "Traceback" not in err
    events = [json.loads(line) for line in events_file.read_text().splitlines()]
    end = events[-1]
    assert end["type"] == "end" and end["complete"] is False and end["verdict"] == "NON CONFORME"
    assert end["counts"]["not_run"] >= 1 and end["counts"]["pass"] == 0
    report = json.loads((state / "conformance" / "latest.json").read_text())
    assert report["summary"]["complete"] is False and report["not_run"]
    assert len(report["results"]) + len(report["not_run"]) == 3


async def test_an_lps_that_never_acts_passes_nothing(state_dir: Path) -> None:
    """Every case waits its whole bound for an LPS that never acts: on a FakeClock, so it takes no real time."""
    said: list[str] = []
    clock = FakeClock()
    async with Sandbox(sandbox_config(), state_dir) as sb:
        control = InProcessControl(sb)
        driver = ExternalDriver(bal="dpi.hopital@mss.sandbox.test", profile=Profile.APP, echo=said.append)
        start = clock.now()
        report = await clock.run(run_job(control, driver, profile=Profile.APP, settings=RED, clock=clock),
                                 timeout=120)
        await control.aclose()
    longest = max(case.timeout * RED.time_scale for case in catalogue(Profile.APP))
    assert clock.now() - start >= longest, "the cases waited out their bounds on the job's clock"
    assert len(report.results) == len(catalogue(Profile.APP))
    passed = [(r.case_id, r.explanation) for r in report.results if r.status is Status.PASS]
    assert passed == [], "an idle LPS must not pass any case"
    assert not report.ok and report.verdict == "NON CONFORME"
    assert all(r.explanation and r.explanation[0].isupper() for r in report.results)
    assert any("➜" in line for line in said)  # the French instructions were given
