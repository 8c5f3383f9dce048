"""The conformance report and the ``conformance`` command's lines: French by default, English with --lang en.

The words are ours (the catalogue); what the cases wrote (titles, explanations, evidence) stays French,
and an English page marks it ``lang="fr"``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from mssante._i18n import use
from mssante.cli import cli
from mssante.conformance import CaseResult, Profile, RunReport, Verdict, catalogue, to_html, to_junit
from mssante.conformance._html import reason

CASES = catalogue(Profile.APP)


def _report(*, not_run: tuple[str, ...] = (), interruption: str = "") -> RunReport:
    passed = CaseResult.of(CASES[0], Verdict.passed("Le LPS a fait ce qu'il fallait."), started=1e9, ended=1e9 + 1)
    failed = CaseResult.of(CASES[1], Verdict.failed("X-MSS-NIL absent."), started=1e9 + 1, ended=1e9 + 2)
    return RunReport(profile=Profile.APP, bal="dpi.hopital@mss.sandbox.test", client="LPS externe",
                     sandbox_domain="mss.sandbox.test", started_at=1e9, ended_at=1e9 + 3, results=(passed, failed),
                     tool_version="0.0-test", not_run=not_run, interruption=interruption)


def test_html_report_is_french_by_default() -> None:
    with use(None):  # the suite's locale: fr_FR
        page = to_html(_report(not_run=(CASES[2].id,), interruption="Campagne interrompue (Ctrl-C)."))
    assert '<html lang="fr">' in page
    for words in ("Compte rendu de test — API LPS MSSanté", "<dt>Résultat</dt>", "NON CONFORME", "Synthèse",
                  "Détail des cas", "Conforme : 1", "Non conforme : 1", "Non exécutés (campagne interrompue) : 1",
                  "campagne interrompue avant ce cas", f"1 cas non exécuté : {CASES[2].id}",
                  "BAL APP (certificat AUTH_CLI)"):
        assert words in page, words
    assert "Summary" not in page and 'lang="fr">' + CASES[0].title_fr not in page  # French page: nothing to mark


def test_html_report_in_english_with_lang_en() -> None:
    page = to_html(_report(not_run=(CASES[2].id, CASES[3].id)), lang="en")
    assert '<html lang="en">' in page
    for words in ("Test report — MSSanté LPS API", "<dt>Result</dt>", "NOT CONFORMANT", "<h2>Summary</h2>",
                  "Case details", "Conformant: 1", "Not conformant: 1", "Not run (run interrupted): 2",
                  f"2 cases not run: {CASES[2].id}, {CASES[3].id}", "BAL APP (AUTH_CLI certificate)",
                  f'<span lang="fr">{CASES[0].title_fr}</span>'.replace("'", "&#x27;")):
        assert words in page, words
    for french in ("Synthèse", "Résultat", "Compte rendu", "NON CONFORME", "campagne interrompue"):
        assert french not in page, french


def test_reason_and_junit_follow_the_language() -> None:
    report = _report(not_run=(CASES[2].id,), interruption="stopped")
    with use("fr"):
        assert reason(report) == f"stopped ; 1 cas non exécuté : {CASES[2].id} ; non conforme : {CASES[1].id}"
        skipped = ET.fromstring(to_junit(report)).find(f".//testcase[@name='{CASES[2].id}']/skipped")
        assert skipped is not None and skipped.get("message") == "Non exécuté : stopped"
    with use("en"):
        assert reason(report) == f"stopped; 1 case not run: {CASES[2].id}; not conformant: {CASES[1].id}"
        skipped = ET.fromstring(to_junit(report)).find(f".//testcase[@name='{CASES[2].id}']/skipped")
        assert skipped is not None and skipped.get("message") == "Not run: stopped"


def test_conformance_list_in_french_then_english() -> None:
    runner = CliRunner()
    french = runner.invoke(cli, ["conformance", "list", "--profile", "app"])
    assert french.exit_code == 0 and f"Profil app — {len(CASES)} cas" in french.output
    english = runner.invoke(cli, ["--lang", "en", "conformance", "list", "--profile", "app"])
    assert english.exit_code == 0 and f"Profile app — {len(CASES)} cases" in english.output
    assert CASES[0].id in english.output and CASES[0].title_fr in english.output  # titles: French only


@pytest.mark.parametrize(("locale", "expected"), [
    ("fr_FR.UTF-8", "cas inconnu pour le profil app : no-such-case. Cas connus : APP-01"),
    ("en_US.UTF-8", "unknown case for profile app: no-such-case. Known cases: APP-01"),
])
def test_conformance_run_refusal_follows_the_locale(tmp_path: Path, locale: str, expected: str) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("LC_ALL", "LC_MESSAGES", "LANGUAGE")} | {"LANG": locale}
    out = subprocess.run([sys.executable, "-m", "mssante", "conformance", "run", "--profile", "app",
                          "--sandbox-state", str(tmp_path / "s"), "--case", "no-such-case"],
                         capture_output=True, text=True, env=env, timeout=120, check=False)
    assert out.returncode == 2 and expected in out.stderr, out.stderr
    assert not (tmp_path / "s").exists()  # refused before anything started


@pytest.mark.slow
def test_conformance_run_lines_in_french_and_english(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("mssante.conformance._driver.BUILTIN_FACTORY", "tests.conformance._builtin_stub:create_driver")
    args = ["conformance", "run", "--profile", "per-org", "--client", "builtin", "--case", "PERORG-01",
            "--trace-file", str(tmp_path / "traces.jsonl"), "--time-scale", "0.02"]
    french = CliRunner().invoke(cli, [*args, "--sandbox-state", str(tmp_path / "fr"),
                                      "--html-file", str(tmp_path / "fr.html")])
    assert french.exit_code == 0, french.output
    for words in ("Bac à sable MSSanté — domaine", "Profil per-org, BAL testée", "Événements de la campagne :",
                  "✔ Conforme —", "Résultats écrits :", "CONFORME — conforme 1, non conforme 0"):
        assert words in french.output, words
    assert "<h2>Synthèse</h2>" in (tmp_path / "fr.html").read_text(encoding="utf-8")
    english = CliRunner().invoke(cli, ["--lang", "en", *args, "--sandbox-state", str(tmp_path / "en"),
                                       "--html-file", str(tmp_path / "en.html")])
    assert english.exit_code == 0, english.output
    for words in ("MSSanté sandbox — domain", "Profile per-org, BAL tested", "Run events:", "✔ Conformant —",
                  "Results written:", "CONFORMANT — conformant 1, not conformant 0"):
        assert words in english.output, words
    assert "<h2>Summary</h2>" in (tmp_path / "en.html").read_text(encoding="utf-8")
