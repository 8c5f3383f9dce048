"""``mssante annuaire search`` as a user runs it (a real process) against the running mock."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.annuaire.conftest import Served


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if k != "MSSANTE_ANNUAIRE_API_KEY"} | (env or {})
    return subprocess.run([sys.executable, "-m", "mssante", "annuaire", "search", *args], capture_output=True,
                          text=True, timeout=60, env=full_env, check=False)


@pytest.fixture
def state(annuaire: Served, tmp_path: Path) -> Path:
    (tmp_path / "sandbox.json").write_text(json.dumps({"annuaire": {"base_url": annuaire.base_url,
                                                                    "api_key": annuaire.api_key}}))
    return tmp_path


def test_french_output_from_the_sandbox(state: Path) -> None:
    out = _run("--sandbox", str(state), "--name", "curie")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "Professionnels trouvés : 1 (sur 1)",
        "CURIE Marie — RPPS 99700000001 — médecin (10), SM54 — Paris",
        "  BAL personnelle (PER) : marie.curie@mss.sandbox.test",
    ]
    structures = _run("--sandbox", str(state / "sandbox.json"), "--structures", "--city", "paris", "--count", "1",
                      "--pages", "5")
    assert structures.returncode == 0, structures.stderr
    assert structures.stdout.startswith("Structures trouvées : 2 (sur 2)\n")
    assert "CENTRE HOSPITALIER DE TEST — idNatStruct 1750000001 — 75000 Paris" in structures.stdout
    assert "  BAL organisationnelle (ORG) : secretariat.cardio@mss.sandbox.test" in structures.stdout
    assert "  BAL applicative (APP) : vsm@mss.sandbox.test" in structures.stdout


def test_json_and_paging(state: Path) -> None:
    out = _run("--sandbox", str(state), "--city", "paris", "--count", "1", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["total"] == 2 and data["more"] is True and len(data["results"]) == 1
    everything = json.loads(_run("--sandbox", str(state), "--city", "paris", "--count", "1", "--pages", "3",
                                 "--json").stdout)
    assert [r["family_name"] for r in everything["results"]] == ["CURIE", "PASTEUR"] and not everything["more"]
    assert everything["results"][1]["professions"] == ["21"]


def test_url_with_the_key_from_the_environment(annuaire: Served) -> None:
    ok = _run("--url", annuaire.base_url, "--identifier", "99700000002", env={"MSSANTE_ANNUAIRE_API_KEY":
                                                                             annuaire.api_key})
    assert ok.returncode == 0 and "PASTEUR Louis" in ok.stdout, ok.stderr
    missing = _run("--url", annuaire.base_url, "--name", "x")
    assert missing.returncode == 2 and "MSSANTE_ANNUAIRE_API_KEY" in missing.stderr
    wrong = _run("--url", annuaire.base_url, "--name", "x", env={"MSSANTE_ANNUAIRE_API_KEY": "faux"})
    assert wrong.returncode == 5 and "401" in wrong.stderr and "Traceback" not in wrong.stderr


def test_usage_errors(state: Path, annuaire: Served) -> None:
    assert _run("--sandbox", str(state)).returncode == 2  # no criterion
    both = _run("--sandbox", str(state), "--url", annuaire.base_url, "--name", "x")
    assert both.returncode == 2 and "l'un des deux" in both.stderr
    assert _run("--sandbox", str(state), "--structures", "--profession", "10").returncode == 2
    assert _run("--sandbox", str(state / "absent.json"), "--name", "x").returncode == 2
