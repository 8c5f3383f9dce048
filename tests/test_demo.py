"""The README's first command: the end-to-end demo, run once, as a user would."""

from __future__ import annotations

import subprocess
import sys
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
