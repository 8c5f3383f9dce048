"""``demo --once`` exits 1 when a conformance case fails (issue 13), in French and in English.

The judged client puts another product's reference on its messages (X-MSS-NIL, ECO.2.4.3): a value of
the right shape, sent, that the suite compares with the reference declared to it and refuses. The case
fails as soon as the message is there (a reference the composer refused would have sent nothing, and
the case would have waited out its bound for a message that cannot come); the demo's own exchange
(steps 1-5) still runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

#: A product reference of the right shape (ECO.2.4.3) that is not the one the demo declares to the suite.
OTHER_REFERENCE = "AUTRE00001"
_ENV = {**os.environ, "LANG": "fr_FR.UTF-8", "COLUMNS": "100", "TERM": "xterm"}


def test_demo_once_exits_1_when_a_conformance_case_fails(tmp_path: Path) -> None:
    # One case per profile (X-MSS-NIL, ECO.2.4.3), and the judged client sends with a reference that
    # is not the declared one: the case cannot pass, the demo's own exchange (steps 1-5) still runs.
    res = subprocess.run(
        [sys.executable, "-m", "mssante", "demo", "--state-dir", str(tmp_path / "state"), "--once",
         "--suite-case", "x-mss-nil", "--suite-product-reference", OTHER_REFERENCE],
        capture_output=True, text=True, env=_ENV, timeout=240, check=False,
    )
    assert res.returncode == 1, (res.stdout[-2000:], res.stderr[-2000:])
    assert "0/1 cas conforme " in res.stdout and "NON CONFORME : profils per-org, app" in res.stdout
    assert "1. Bac à sable MSSanté démarré" in res.stdout and "accusé de lecture (MDN) envoyé" in res.stdout
    assert "non conforme (profils : per-org, app)" in res.stderr and "Traceback" not in res.stderr
    for profile in ("per-org", "app"):  # judged on the message sent, not on a message missing
        report = json.loads((tmp_path / "state" / "conformance" / f"{profile}.json").read_text(encoding="utf-8"))
        [result] = report["results"]
        assert result["status"] == "fail" and "X-MSS-NIL AUTRE00001" in result["explanation"], result


def test_demo_once_in_english_with_lang_en(tmp_path: Path) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "mssante", "--lang", "en", "demo", "--state-dir", str(tmp_path / "state"), "--once",
         "--suite-case", "x-mss-nil", "--suite-product-reference", OTHER_REFERENCE],
        capture_output=True, text=True, env=_ENV, timeout=240, check=False,
    )
    assert res.returncode == 1, (res.stdout[-2000:], res.stderr[-2000:])
    for line in ("1. MSSanté sandbox started", "PSC session open", "The DPI receives the read receipt: “",
                 "read receipt (MDN) sent", "5. Dr CURIE writes to the auto-responders",
                 "6. The conformance suite", "0/1 cases conformant", "NOT CONFORMANT: profiles per-org, app"):
        assert line in res.stdout, (line, res.stdout[-3000:])
    assert "Bac à sable" not in res.stdout and "accusé de lecture" not in res.stdout
    assert "not conformant (profiles: per-org, app)" in res.stderr and "Traceback" not in res.stderr
