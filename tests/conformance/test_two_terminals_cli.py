"""The two-terminal setup as documented: ``mssante sandbox up`` in one terminal, ``mssante conformance run
--client builtin`` in another (CIBA login); the suite drives the sandbox through its API."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conformance._separate import separate_sandbox

pytestmark = pytest.mark.slow


def test_the_documented_cli_path_against_a_running_sandbox(tmp_path: Path) -> None:
    """Terminal 1: `mssante sandbox up`; terminal 2: `mssante conformance run --client builtin` (CIBA login)."""
    state = tmp_path / "state"
    state.mkdir()
    with separate_sandbox(state):
        out = subprocess.run(
            [sys.executable, "-m", "mssante", "conformance", "run", "--profile", "per-org", "--client", "builtin",
             "--sandbox-state", str(state), "--case", "authenticationfailed", "--case", "psc-logout",
             "--case", "crl-outage", "--time-scale", "0.1", "--events", str(tmp_path / "events.jsonl")],
            capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Bac à sable déjà lancé" in out.stdout and "\nCONFORME" in out.stdout
    end = json.loads((tmp_path / "events.jsonl").read_text().splitlines()[-1])
    assert end["verdict"] == "CONFORME" and end["counts"]["pass"] == 3 and end["exit_code"] == 0
