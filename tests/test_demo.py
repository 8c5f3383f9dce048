"""The README's first command: the end-to-end demo, run once, as a user would."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_demo_once_runs_the_whole_system(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "mssante", "demo", "--state-dir", str(tmp_path / "state"), "--once"],
        capture_output=True, text=True, timeout=240,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    text = out.stdout
    for expected in (
        "session PSC ouverte",                       # PER LPS logged in through the bridge (CIBA)
        "X-MSS-CODECDA=11502-2 X-MSS-INS=O",         # CR de biologie from the APP BAL
        "X-MSS-CODECDA=60591-5 X-MSS-INS=O",         # VSM from the PER BAL
        "Le DPI reçoit l'accusé de lecture",          # MDN back to the APP BAL
        "reçu de vsm@",                               # the auto-responder answered
        "Webmail : http://127.0.0.1:",
    ):
        assert expected in text, f"missing {expected!r} in:\n{text}"
    assert text.count("accusé de lecture (MDN) envoyé") == 2


def test_ctrl_c_during_the_conformance_step_exits_130_and_writes_no_report(tmp_path: Path) -> None:
    """SIGINT while the suite runs: the demo stops without finishing the run, exits 130, and no report
    claims that run. How fast (2 s on an idle machine, issue 13) is not asserted: on a loaded CI machine the
    interpreter's own exit can take seconds; the missing report shows the run did not go on."""
    state = tmp_path / "state"
    with subprocess.Popen(
        [sys.executable, "-m", "mssante", "demo", "--state-dir", str(state), "--once"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        try:
            for line in proc.stdout:  # wait for the event itself: the conformance step has begun
                if line.startswith("6. La suite de conformité"):
                    break
            else:
                raise AssertionError(f"the demo ended before its conformance step ({proc.wait()})")
            signalled = time.time()
            proc.send_signal(signal.SIGINT)
            code = proc.wait(timeout=60)  # a bound for a hung process only
        finally:
            if proc.poll() is None:
                proc.kill()
        err = proc.stderr.read()
    assert code == 130, err
    assert "Traceback" not in err and "interrompu" in err, err
    reports = [p for p in (state / "conformance").glob("*") if p.is_file()]
    assert [p.name for p in reports if p.stat().st_mtime >= signalled] == []
