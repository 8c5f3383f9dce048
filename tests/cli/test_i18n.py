"""French and English from one catalogue (issue 13, item 6): the language follows ``LANG``.

The must-show runs: a failing ``mssante xdm validate`` (a real process, its environment's
``LANG``) and a failing ``mssante send`` (against the sandbox on loopback), each with 1 and 2
errors, under ``LANG=fr_FR.UTF-8`` and ``LANG=en_US.UTF-8``: the messages are in that language
and the plurals are right (French: 0 and 1 take the singular).
"""

from __future__ import annotations

import asyncio
import io
import os
import re
import string
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from mssante._i18n import LOCALE_DIR, language_from_env, parse_lang, translator, use
from mssante._i18n._extract import finding_templates, missing
from tests.cli._run import exit_code
from tests.hardening import _samples

FR = {"LANG": "fr_FR.UTF-8"}
EN = {"LANG": "en_US.UTF-8"}


def _env(locale: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("LC_ALL", "LC_MESSAGES", "LANG", "LANGUAGE")}
    return {**env, **locale}


def _without(data: bytes, names: set[str]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for name in src.namelist():
            if name not in names:
                dst.writestr(name, src.read(name))
    return out.getvalue()


# -- the catalogue -----------------------------------------------------------------------------------
def test_every_message_of_the_sources_has_its_french() -> None:
    gaps = missing("fr")
    assert not gaps, "run python -m mssante._i18n._extract, then translate in the .po:\n" + "\n".join(gaps)


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def test_every_translation_keeps_the_placeholders_of_its_source() -> None:
    from babel.messages.pofile import read_po

    with open(LOCALE_DIR / "fr" / "LC_MESSAGES" / "mssante.po", "rb") as handle:
        catalog = read_po(handle, locale="fr")
    checked = 0
    for entry in catalog:
        if not entry.id:
            continue
        ids = entry.id if isinstance(entry.id, tuple) else (entry.id,)
        strings = entry.string if isinstance(entry.string, tuple) else (entry.string,)
        expected = set().union(*(_fields(i) for i in ids))
        for translated in strings:
            # a singular may leave {n} out ("le destinataire"), never add or rename a field
            assert _fields(translated) <= expected and _fields(translated) >= expected - {"n"}, (entry.id, translated)
        checked += 1
    assert checked > 150


def test_the_finding_templates_are_found_in_the_library_sources() -> None:
    found = {template for template, _, _ in finding_templates()}
    assert "README.TXT is missing at the root of the archive" in found
    assert "X-MSS-INS is missing (expected {0})" in found  # an f-string: its field numbered


@pytest.mark.parametrize(
    ("english", "french"),
    [
        ("X-MSS-INS is missing (expected 'O')", "X-MSS-INS absent ('O' attendu)"),
        ("IHE_XDM.ZIP: README.TXT is missing at the root of the archive",  # a finding quoting another
         "IHE_XDM.ZIP : README.TXT manque à la racine de l'archive"),
        ("SHA-1 mismatch: metadata ab12, file cd34", "SHA-1 différent : métadonnées ab12, fichier cd34"),
        ("a message no template knows", "a message no template knows"),
    ],
)
def test_findings_are_rendered_with_their_parameters(english: str, french: str) -> None:
    assert translator("fr").finding(english) == french
    assert translator("en").finding(english) == english


@pytest.mark.parametrize(
    ("n", "fr", "en"), [(0, "0 erreur", "0 errors"), (1, "1 erreur", "1 error"),
                        (2, "2 erreurs", "2 errors"), (10**6, "1000000 erreurs", "1000000 errors")],
)
def test_plurals(n: int, fr: str, en: str) -> None:
    assert translator("fr").ngettext("{n} error", "{n} errors", n).format(n=n) == fr
    assert translator("en").ngettext("{n} error", "{n} errors", n).format(n=n) == en


@pytest.mark.parametrize(
    ("env", "lang"),
    [
        ({"LANG": "fr_FR.UTF-8"}, "fr"),
        ({"LANG": "en_US.UTF-8"}, "en"),
        ({"LANG": "de_DE.UTF-8"}, "en"),
        ({"LANG": "C.UTF-8"}, "fr"),
        ({}, "fr"),
        ({"LANG": "fr_FR.UTF-8", "LC_MESSAGES": "en_GB.UTF-8"}, "en"),
        ({"LANG": "en_US.UTF-8", "LC_MESSAGES": "en_US.UTF-8", "LC_ALL": "fr_CA.UTF-8"}, "fr"),
    ],
)
def test_the_locale_variables_choose_the_language(env: dict[str, str], lang: str) -> None:
    assert language_from_env(env) == lang


def test_use_overrides_the_locale_and_is_undone() -> None:
    assert parse_lang("en-GB") == "en" and parse_lang("POSIX") is None
    with use("en") as t:
        assert t.lang == "en"
        with use("fr") as inner:
            assert inner.lang == "fr"
    assert re.fullmatch(r"fr|en", translator(language_from_env()).lang)


# -- must show: a failing `xdm validate` -------------------------------------------------------------
def _validate(path: Path, locale: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mssante", "xdm", "validate", str(path)], capture_output=True,
                          text=True, env=_env(locale), timeout=120, check=False)


@pytest.mark.parametrize(
    ("locale", "missing_names", "expected"),
    [
        (FR, {"README.TXT"}, ["README.TXT manque à la racine de l'archive",
                              "REFUSÉE : 1 erreur, 0 avertissement, 3 infos, 4 constats"]),
        (FR, {"README.TXT", "INDEX.HTM"}, ["INDEX.HTM manque à la racine de l'archive",
                                           "REFUSÉE : 2 erreurs, 0 avertissement, 3 infos, 5 constats"]),
        (EN, {"README.TXT"}, ["README.TXT is missing at the root of the archive",
                              "REFUSED: 1 error, 0 warnings, 3 info, 4 findings"]),
        (EN, {"README.TXT", "INDEX.HTM"}, ["INDEX.HTM is missing at the root of the archive",
                                           "REFUSED: 2 errors, 0 warnings, 3 info, 5 findings"]),
    ],
    ids=["fr-1", "fr-2", "en-1", "en-2"],
)
def test_a_failing_xdm_validate_speaks_the_locale(locale: dict[str, str], missing_names: set[str],
                                                 expected: list[str], tmp_path: Path) -> None:
    path = tmp_path / "IHE_XDM.ZIP"
    path.write_bytes(_without(_samples.archive(), missing_names))
    res = _validate(path, locale)
    assert res.returncode == 1, res.stderr
    lines = res.stdout.splitlines()
    head = "GRAVITÉ" if locale is FR else "SEVERITY"
    assert lines[0].split()[0] == head
    for text in expected:
        assert any(text in line for line in lines), (text, res.stdout)
    assert ("(s)" not in res.stdout) and ("ERREUR" in res.stdout) is (locale is FR)
    other = "is missing at the root" if locale is FR else "manque à la racine"
    assert other not in res.stdout


def test_lang_option_wins_over_the_locale(tmp_path: Path) -> None:
    path = tmp_path / "IHE_XDM.ZIP"
    path.write_bytes(_without(_samples.archive(), {"README.TXT"}))
    res = subprocess.run([sys.executable, "-m", "mssante", "--lang", "en", "xdm", "validate", str(path)],
                         capture_output=True, text=True, env=_env(FR), timeout=120, check=False)
    assert res.returncode == 1 and "REFUSED: 1 error," in res.stdout


# -- must show: a failing `send` ---------------------------------------------------------------------
@pytest.mark.slow
async def test_a_failing_send_speaks_the_locale(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.client.test_mailbox_support import CLIENT_ID, MARIE, PER, running_sandbox

    for name in ("LC_ALL", "LC_MESSAGES", "LANGUAGE"):
        monkeypatch.delenv(name, raising=False)
    unknown = ("personne.inconnue@mss.sandbox.test", "autre.inconnue@mss.sandbox.test")
    cases = [
        (FR, unknown[:1], "le serveur a refusé le destinataire : personne.inconnue@mss.sandbox.test (550 5.1.1",
         "Vérifiez l'adresse"),
        (FR, unknown, "le serveur a refusé les 2 destinataires : personne.inconnue@", "Vérifiez les adresses"),
        (EN, unknown[:1], "the server refused the recipient: personne.inconnue@mss.sandbox.test (550 5.1.1",
         "Check the address"),
        (EN, unknown, "the server refused all 2 recipients: personne.inconnue@", "Check the addresses"),
    ]
    async with running_sandbox(tmp_path) as sb:
        monkeypatch.setenv("MSS_TEST_TOKEN", sb.psc.issue_tokens_for_tests(MARIE, CLIENT_ID)["access_token"])
        dns = f"{sb.info['dns']['host']}:{sb.info['dns']['port']}"
        for locale, recipients, refusal, advice in cases:
            monkeypatch.setenv("LANG", locale["LANG"])
            argv = ["send", PER, "--kind", "PER", "--dns", dns, "--ca-bundle", sb.info["ca_bundle"],
                    "--token-env", "MSS_TEST_TOKEN", "--timeout", "10", "--subject", "Test", "--text", "Bonjour.",
                    "--product-reference", "DEV000001"]
            for address in recipients:
                argv += ["--to", address]
            code = await asyncio.to_thread(exit_code, argv)
            err = capsys.readouterr().err
            assert code == 6, err
            prefix = "mssante : erreur : " if locale is FR else "mssante: error: "
            assert err.startswith(prefix + refusal), err
            assert advice in err and "Traceback" not in err
            assert err.splitlines()[1:] == ["  [RFC 5321 §3.3]"]
