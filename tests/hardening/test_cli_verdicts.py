"""Issue 13 item 5 for ``mssante xdm`` and ``mssante check``: verdicts people and CI can trust.

Every archive ``xdm validate`` refuses gives exit 1 and findings (JSON alone on stdout with
``--json``), unsafe ones included; a file that is no ZIP gives 7; ``check`` refuses what is not
a message; ``xdm inspect`` refuses a ZIP that is not XDM; help and messages are French.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from mssante.cli._check import check as check_command
from mssante.cli._check import count_fr
from mssante.cli._xdm import xdm
from mssante.message import check_message, not_a_message
from tests._hypothesis import examples
from tests.hardening import _samples
from tests.xdm._util import zeros_bomb

META = "IHE_XDM/SUBSET01/METADATA.XML"


def _zip(entries: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return out.getvalue()


def unsafe_archives() -> dict[str, tuple[bytes, str]]:
    good = _samples.archive()
    return {
        "traversal": (_zip({"../evil.txt": b"x", META: b"<r/>"}), "XDM-ZIP-PATH"),
        "bomb": (zeros_bomb(1 << 28), "XDM-ZIP-BOMB"),
        "doctype": (
            _samples.replace_entry(good, META, b"<!DOCTYPE r [<!ENTITY e SYSTEM 'file:///etc/passwd'>]><r>&e;</r>"),
            "XDM-XML-SAFE",
        ),
        "namespace": (
            _samples.replace_entry(good, _samples.CDA_PATH, b"<r xmlns='" + b"u" * 5000 + b"'/>"),
            "XDM-LIMIT",
        ),
    }


def run_cli(*args: str, data: bytes | None = None) -> subprocess.CompletedProcess[str]:
    """The real CLI in a subprocess: stdout and stderr apart, the true exit code."""
    env = {**os.environ, "LANG": "fr_FR.UTF-8"}
    return subprocess.run(
        [sys.executable, "-m", "mssante", *args], input=data.decode() if data else None,
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip


@pytest.mark.parametrize("kind", ["traversal", "bomb", "doctype", "namespace"])
def test_validate_refuses_an_unsafe_archive_with_exit_1_and_json(kind: str, tmp_path: Path) -> None:
    data, rule = unsafe_archives()[kind]
    path = tmp_path / "IHE_XDM.ZIP"
    path.write_bytes(data)
    res = run_cli("xdm", "validate", "--json", str(path))
    assert res.returncode == 1, res.stderr
    doc = json.loads(res.stdout)  # stdout is the JSON document and nothing else
    assert doc["ok"] is False and doc["refused"] is True
    assert [f["rule"] for f in doc["findings"]] == [rule]
    assert doc["findings"][0]["message"].startswith("archive refusée : ")
    assert "Traceback" not in res.stderr
    table = run_cli("xdm", "validate", str(path))
    assert table.returncode == 1
    assert "REFUSÉE : 1 erreur, 0 avertissement, 0 info, 1 constat" in table.stdout


def test_validate_an_archive_with_an_out_of_range_date_gives_findings(tmp_path: Path) -> None:
    cda = _samples.cda_documents()
    first = cda[0].replace(b'value="20240430160527+0200"', b'value="999912312359-1400"', 1)
    path = tmp_path / "IHE_XDM.ZIP"
    path.write_bytes(_samples.replace_entry(_samples.archive(cda), _samples.CDA_PATH, first))
    res = run_cli("xdm", "validate", "--json", str(path))
    assert "Traceback" not in res.stderr and res.returncode == 1
    assert any("effectiveTime" in f["message"] for f in json.loads(res.stdout)["findings"])
    message = tmp_path / "m.eml"
    message.write_bytes(_samples.message_carrying(path.read_bytes()))
    res = run_cli("check", str(message))
    assert "Traceback" not in res.stderr and res.returncode in (0, 1)
    assert "effectiveTime" in res.stdout


def test_validate_a_file_that_is_no_zip_exits_7_with_json_on_stdout(tmp_path: Path) -> None:
    path = tmp_path / "notes.md"
    path.write_text("# Compte rendu\n")
    res = run_cli("xdm", "validate", "--json", str(path))
    assert res.returncode == 7
    assert json.loads(res.stdout)["findings"][0]["rule"] == "XDM-ZIP"
    res = run_cli("xdm", "validate", str(path))
    assert res.returncode == 7 and res.stdout == "" and "n'est pas une archive ZIP" in res.stderr


def test_validate_a_good_archive_exits_0(tmp_path: Path) -> None:
    path = tmp_path / "IHE_XDM.ZIP"
    path.write_bytes(_samples.archive())
    res = CliRunner().invoke(xdm, ["validate", "--json", str(path)])
    assert res.exit_code == 0 and json.loads(res.output)["ok"] is True


def test_inspect_refuses_a_zip_that_is_not_xdm(tmp_path: Path) -> None:
    path = tmp_path / "photos.zip"
    path.write_bytes(_zip({"photo.jpg": b"\xff\xd8", "notes.txt": b"x"}))
    res = run_cli("xdm", "inspect", str(path))
    assert res.returncode == 7
    assert "pas une archive IHE XDM" in res.stderr and res.stdout == ""
    path.write_bytes(_samples.archive())
    assert run_cli("xdm", "inspect", str(path)).returncode == 0


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "entrée vide"),
        (b"# Compte rendu\n\nLe patient va bien.\n", "ne commence pas par un champ d'en-tête"),
        (b"title: CR\nauthor: moi\n\ntexte\n", "aucun champ d'en-tête de message"),
        (bytes(range(256)) * 4, "données binaires"),
        (b"PK\x03\x04" + b"\x00" * 40, "archive ZIP"),
        (b"%PDF-1.4\n%%EOF\n", "document PDF"),
    ],
)
def test_check_refuses_what_is_not_a_message(content: bytes, reason: str, tmp_path: Path) -> None:
    path = tmp_path / "input"
    path.write_bytes(content)
    res = CliRunner().invoke(check_command, [str(path)])
    assert res.exit_code == 1 and reason in res.output and "RFC 5322 §2.1" in res.output
    res = CliRunner().invoke(check_command, [str(path), "--json"])
    doc = json.loads(res.output)
    assert res.exit_code == 1 and doc["ok"] is False and doc["not_a_message"]


def test_check_still_accepts_an_mbox_export_and_a_real_message(tmp_path: Path) -> None:
    path = tmp_path / "m.eml"
    for prefix in (b"From jean@x Thu May  2 09:30:00 2024\r\n", b"\xef\xbb\xbf"):  # mbox separator, UTF-8 BOM
        path.write_bytes(prefix + _samples.message())
        res = CliRunner().invoke(check_command, [str(path), "--json"])
        assert "not_a_message" not in json.loads(res.output)


@pytest.mark.parametrize("command", [["check"], ["xdm", "validate"], ["xdm", "inspect"], ["xdm", "build"]])
def test_help_is_french_lists_exit_codes_and_shows_no_docstring_sections(command: list[str]) -> None:
    res = run_cli(*command, "--help")
    assert res.returncode == 0
    assert "Raises:" not in res.stdout and "Error:" not in res.stdout
    if command != ["xdm", "build"]:
        assert "Codes de sortie" in res.stdout


def test_french_counts_are_correct() -> None:
    assert [count_fr(n, "erreur") for n in (0, 1, 2)] == ["0 erreur", "1 erreur", "2 erreurs"]


# -- not_a_message: properties --------------------------------------------------------------------
FIELD_NAMES = st.sampled_from(["From", "To", "Subject", "Date", "Message-ID", "X-Mailer", "Received", "MIME-Version"])
FIELD_VALUES = st.text(st.characters(min_codepoint=32, max_codepoint=0x2FF, exclude_characters="\r\n"), max_size=40)


@settings(max_examples=examples(200), deadline=None)
@given(st.lists(st.tuples(FIELD_NAMES, FIELD_VALUES), min_size=1, max_size=6), st.binary(max_size=200))
def test_a_header_section_with_a_message_field_is_never_refused(fields: list[tuple[str, str]], body: bytes) -> None:
    head = "".join(f"{name}: {value}\r\n" for name, value in fields).encode()
    kinds = {name.lower() for name, _ in fields}
    verdict = not_a_message(head + b"\r\n" + body)
    assert verdict is None if kinds - {"x-mailer"} else verdict == "no_message_field"


@settings(max_examples=examples(300), deadline=None)
@given(st.binary(max_size=400))
def test_any_bytes_get_a_verdict_and_refusals_are_one_finding(data: bytes) -> None:
    verdict = not_a_message(data)
    report = check_message(data)
    if verdict is not None:
        assert [f.rule for f in report.findings] == ["RFC 5322 §2.1"] and not report.ok


def test_check_reports_a_read_limit_as_a_finding_with_exit_1(tmp_path: Path) -> None:
    path = tmp_path / "m.eml"
    words = b" ".join(b"=?utf-8?q?a?=" for _ in range(6000))
    path.write_bytes(b"From: a@b.mssante.fr\r\nSubject: " + words + b"\r\n\r\nhi\r\n")
    res = run_cli("check", "--json", str(path))
    assert res.returncode == 1 and "Traceback" not in res.stderr
    (finding,) = json.loads(res.stdout)["findings"]
    assert finding["rule"] == "RFC 2047 §2" and finding["message"].startswith("message refusé, limite de lecture")
