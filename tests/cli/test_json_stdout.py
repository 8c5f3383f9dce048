"""With ``--json``, stdout carries the JSON and nothing else (issue 13, item 5).

One sandbox on loopback; every JSON-capable command that needs no Redis runs through the main
CLI (``mssante.cli.main``) and its stdout goes through ``json.loads`` (a line at a time for the
JSON Lines commands). ``fleet`` (Redis) and ``conformance run --json`` are covered in their own
test files.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from tests.cli._run import exit_code
from tests.client.test_mailbox_support import APP, CLIENT_ID, MARIE, PER, running_sandbox
from tests.hardening import _samples

pytestmark = pytest.mark.slow


_cli = exit_code


async def _stdout(capsys: pytest.CaptureFixture[str], argv: list[str], *, lines: bool = False,
                  codes: tuple[int, ...] = (0,)) -> Any:
    code = await asyncio.to_thread(_cli, argv)
    out, err = capsys.readouterr()
    assert code in codes, (argv, code, err)
    if lines:
        return [json.loads(line) for line in out.splitlines()]
    return json.loads(out)


async def test_every_json_output_is_alone_on_stdout(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    async with running_sandbox(tmp_path) as sb, asyncio.timeout(120):
        state = str(tmp_path / "sandbox")
        dns = f"{sb.info['dns']['host']}:{sb.info['dns']['port']}"
        common = ["--dns", dns, "--ca-bundle", sb.info["ca_bundle"], "--timeout", "10", "--json"]
        monkeypatch.setenv("MSS_TEST_TOKEN", sb.psc.issue_tokens_for_tests(MARIE, CLIENT_ID)["access_token"])

        assert (await _stdout(capsys, ["discover", PER, "--dns", dns, "--json"]))["address"] == PER
        sent = await _stdout(capsys, ["send", PER, "--kind", "PER", *common, "--token-env", "MSS_TEST_TOKEN",
                                      "--to", APP, "--subject", "JSON", "--text", "Bonjour.",
                                      "--product-reference", "DEV000001"])
        assert sent["accepted"] == [APP]
        bal = next(b for b in sb.info["bals"] if b["address"] == APP)
        app = [APP, "--kind", "APP", *common, "--cert", bal["cert"], "--key", bal["key"]]
        (listed,) = await _stdout(capsys, ["fetch", *app], lines=True)
        assert (await _stdout(capsys, ["fetch", *app, "--uid", str(listed["uid"])]))["subject"] == "JSON"

        # the sessions-ended counts go to stderr (they used to precede the JSON on stdout)
        faults = await _stdout(capsys, ["sandbox", "fault", "--state-dir", state, "--end-sessions", "bye",
                                        "--end-psc-sessions", sb.info["professionals"][0]["national_id"], "--json"])
        assert "pending_auth_failures" in faults
        assert await _stdout(capsys, ["sandbox", "journal", "--state-dir", state, "--json"], lines=True)
        found = await _stdout(capsys, ["annuaire", "search", "--sandbox", state, "--name", "a", "--json"])
        assert "results" in found

        eml = tmp_path / "m.eml"
        eml.write_bytes(_samples.message(_samples.archive()))
        assert "findings" in json.dumps(await _stdout(capsys, ["check", str(eml), "--json"], codes=(0, 1)))
        xdm = tmp_path / "a.zip"
        xdm.write_bytes(_samples.archive())
        assert "findings" in json.dumps(await _stdout(capsys, ["xdm", "validate", str(xdm), "--json"], codes=(0, 1)))
        assert (await _stdout(capsys, ["xdm", "validate", str(eml), "--json"], codes=(7,)))  # not a ZIP: still JSON
