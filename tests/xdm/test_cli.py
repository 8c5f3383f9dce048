"""The ``xdm`` click group: build, inspect, validate (table and JSON), exit codes, typed errors."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from mssante.cli._xdm import xdm
from mssante.errors import ConfigError, ContentError, UnsafeContentError
from tests.xdm._util import CRBIO, VSM, needs_samples, read_entry, rezip

pytestmark = needs_samples

META = "IHE_XDM/SUBSET01/METADATA.XML"


def _build(tmp_path: Path) -> Path:
    out = tmp_path / "IHE_XDM.ZIP"
    res = CliRunner().invoke(xdm, ["build", str(CRBIO), str(VSM), "-o", str(out), "--sender", "Dr Test"])
    assert res.exit_code == 0, res.output
    assert "2 documents)" in res.output
    return out


def test_build_inspect_validate(tmp_path: Path) -> None:
    out = _build(tmp_path)
    runner = CliRunner()
    res = runner.invoke(xdm, ["inspect", str(out)])
    assert res.exit_code == 0, res.output
    assert "X-MSS-CODECDA: 11502-2,SYNTH" in res.output and "X-MSS-INS: O" in res.output
    assert "classCode=10 formatCode=urn:ihe:lab:xd-lab:2008" in res.output
    assert "PAT-TROIS DOMINIQUE 19790328 F" in res.output
    res = runner.invoke(xdm, ["validate", str(out)])
    assert res.exit_code == 0, res.output
    assert "VALIDE : 0 erreur," in res.output and "CI-SIS INS" in res.output
    res = runner.invoke(xdm, ["validate", "--json", str(out)])
    assert res.exit_code == 0
    doc = json.loads(res.output)
    assert doc["ok"] is True and doc["headers"]["X-MSS-INS"] == "O"


def test_validate_failure_exit_code(tmp_path: Path) -> None:
    out = _build(tmp_path)
    data = out.read_bytes()
    meta = read_entry(data, META).replace(b"266780c539c36f2d60ae6a7f7173cfea2a9a4f54", b"f" * 40)
    bad = tmp_path / "bad.zip"
    bad.write_bytes(rezip(data, replace={META: meta}))
    res = CliRunner().invoke(xdm, ["validate", str(bad)])
    assert res.exit_code == 1
    assert "XDM-HASH" in res.output and "REFUSÉE : 1 erreur," in res.output
    res = CliRunner().invoke(xdm, ["validate", "--json", str(bad)])
    assert res.exit_code == 1
    assert [f["rule"] for f in json.loads(res.output)["findings"] if f["severity"] == "error"] == ["XDM-HASH"]


def test_typed_errors_bubble_up(tmp_path: Path) -> None:
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not a zip")
    res = CliRunner().invoke(xdm, ["validate", str(junk)])
    assert res.exit_code == 7  # not a ZIP at all: the file is unreadable as an archive
    res = CliRunner().invoke(xdm, ["inspect", str(junk)])
    assert isinstance(res.exception, ContentError)
    res = CliRunner().invoke(xdm, ["inspect", str(tmp_path / "missing.zip")])
    assert isinstance(res.exception, ConfigError)
    evil = tmp_path / "evil.xml"
    evil.write_bytes(b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>')
    res = CliRunner().invoke(xdm, ["build", str(evil), "-o", str(tmp_path / "o.zip")])
    assert isinstance(res.exception, UnsafeContentError)
