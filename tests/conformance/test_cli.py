"""``mssante conformance list`` and ``run`` (builtin hook with the stdlib LPS, and external)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from mssante.cli._conformance import conformance
from mssante.conformance import Profile, catalogue, from_json
from mssante.errors import ConfigError, UsageError

pytestmark = pytest.mark.slow


def test_list_prints_every_case() -> None:
    result = CliRunner().invoke(conformance, ["list"])
    assert result.exit_code == 0, result.output
    for profile in Profile:
        for case in catalogue(profile):
            assert case.id in result.output
            assert case.title_fr in result.output


def test_list_one_profile() -> None:
    result = CliRunner().invoke(conformance, ["list", "--profile", "app"])
    assert result.exit_code == 0
    assert "APP-01" in result.output and "PERORG-01" not in result.output


def test_run_builtin_through_the_hook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("mssante.conformance._driver.BUILTIN_FACTORY",
                        "tests.conformance._builtin_stub:create_driver")
    state = tmp_path / "state"
    out = {name: tmp_path / f"cr.{name}" for name in ("html", "xml", "json")}
    result = CliRunner().invoke(conformance, [
        "run", "--profile", "per-org", "--client", "builtin", "--sandbox-state", str(state),
        "--case", "PERORG-01", "--case", "x-mss-nil", "--case", "reopen-bye", "--case", "psc-logout",
        "--trace-file", str(tmp_path / "traces.jsonl"), "--time-scale", "0.02",
        "--html", str(out["html"]), "--junit", str(out["xml"]), "--json", str(out["json"]),
    ])
    assert result.exit_code == 0, result.output
    assert "CONFORME" in result.output and "--json FICHIER est l'ancien nom de --json-file" in result.stderr
    report = from_json(out["json"].read_text(encoding="utf-8"))
    assert [r.case_id for r in report.results] == ["PERORG-01", "PERORG-12", "PERORG-14", "PERORG-25"]
    assert json.loads((state / "conformance" / "latest.json").read_text(encoding="utf-8"))["summary"]["ok"]
    assert ET.fromstring(out["xml"].read_text(encoding="utf-8")).find("testsuite") is not None
    assert "PERORG-25" in out["html"].read_text(encoding="utf-8")


def test_run_writes_the_new_file_options_and_json_alone_on_stdout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("mssante.conformance._driver.BUILTIN_FACTORY",
                        "tests.conformance._builtin_stub:create_driver")
    out = {name: tmp_path / f"cr.{name}" for name in ("html", "xml", "json")}
    result = CliRunner().invoke(conformance, [
        "run", "--profile", "per-org", "--client", "builtin", "--sandbox-state", str(tmp_path / "state"),
        "--case", "PERORG-01", "--trace-file", str(tmp_path / "traces.jsonl"), "--time-scale", "0.02",
        "--html-file", str(out["html"]), "--junit-file", str(out["xml"]), "--json-file", str(out["json"]), "--json",
    ])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)  # stdout is the JSON and nothing else; the French text went to stderr
    assert printed == json.loads(out["json"].read_text(encoding="utf-8"))
    assert "CONFORME" in result.stderr and "ancien nom" not in result.stderr
    assert ET.fromstring(out["xml"].read_text(encoding="utf-8")).find("testsuite") is not None
    assert "PERORG-01" in out["html"].read_text(encoding="utf-8")


def test_run_old_output_names_warn_and_cannot_clash_with_the_new(tmp_path: Path) -> None:
    result = CliRunner().invoke(conformance, ["run", "--profile", "app", "--sandbox-state", str(tmp_path / "s"),
                                              "--html", str(tmp_path / "a.html"),
                                              "--html-file", str(tmp_path / "b.html")])
    assert isinstance(result.exception, UsageError) and "--html-file" in str(result.exception)
    result = CliRunner().invoke(conformance, ["run", "--profile", "app", "--sandbox-state", str(tmp_path / "s"),
                                              "--json", "--events", "-"])
    assert isinstance(result.exception, UsageError) and "stdout" in str(result.exception)


def test_run_builtin_without_client_library_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("mssante.conformance._driver.BUILTIN_FACTORY", "mssante_no_such_module:create_driver")
    result = CliRunner().invoke(conformance, ["run", "--profile", "app", "--client", "builtin",
                                              "--sandbox-state", str(tmp_path / "s")])
    assert isinstance(result.exception, ConfigError)


def test_run_external_prints_french_instructions_and_fails_without_evidence(tmp_path: Path) -> None:
    result = CliRunner().invoke(conformance, [
        "run", "--profile", "app", "--sandbox-state", str(tmp_path / "s"), "--case", "x-mss-nil",
        "--case", "traces", "--time-scale", "0.002",
    ])
    assert result.exit_code == 1, result.output
    assert "Envoyez depuis votre LPS (BAL dpi.hopital@mss.sandbox.test) un compte rendu de biologie" in result.output
    assert "Non conforme" in result.output and "Non exécuté" not in result.output
    assert "Aucun fichier de traces fourni (option --trace-file FICHIER)" in result.output
    assert "NON CONFORME" in result.output
