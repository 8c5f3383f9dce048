"""Error messages that help (issue 13, item 7): the user's words, the likely cause, what to do.

Each message names the flag or file at fault, says the likely cause and the next step, in
French; the ref2 rule goes on a second line. Run through the main CLI against the sandbox.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from mssante.sandbox.runner import Sandbox
from tests.cli._run import exit_code
from tests.client.test_mailbox_support import APP, PER, running_sandbox

pytestmark = pytest.mark.slow


def _common(sb: Sandbox, address: str, kind: str) -> list[str]:
    dns = f"{sb.info['dns']['host']}:{sb.info['dns']['port']}"
    return [address, "--kind", kind, "--dns", dns, "--timeout", "10"]


async def _err(capsys: pytest.CaptureFixture[str], argv: list[str], code: int) -> list[str]:
    got = await asyncio.to_thread(exit_code, argv)
    err = capsys.readouterr().err
    assert got == code, err
    assert "Traceback" not in err and err.startswith("mssante : erreur : ")
    return err.splitlines()


async def test_missing_ca_bundle_names_the_flag(sandbox_state: Path, capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    async with running_sandbox(sandbox_state) as sb:
        monkeypatch.setenv("MSS_TEST_TOKEN", "x")
        lines = await _err(capsys, ["fetch", *_common(sb, PER, "PER"), "--token-env", "MSS_TEST_TOKEN"], 2)
    first = lines[0]
    assert first.startswith("mssante : erreur : --ca-bundle manquant")  # the flag, not the API's ca_bundle
    assert "give ca_bundle" not in first and "ssl_context" not in first
    assert "IGC Santé" in first and "PEM" in first and "sandbox.json" in first
    assert lines[1:] == ["  [ECO.1.1.6]"]


async def test_an_expired_static_token_says_120_s_and_token_command(
    sandbox_state: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_sandbox(sandbox_state) as sb:
        monkeypatch.setenv("MSS_TEST_TOKEN", "eyJub3QiOiJ2YWxpZCJ9.eyJzdWIiOiJ4In0.c2ln")
        argv = ["fetch", *_common(sb, PER, "PER"), "--ca-bundle", sb.info["ca_bundle"], "--token-env",
                "MSS_TEST_TOKEN"]
        lines = await _err(capsys, argv, 5)
    first = lines[0]
    assert "freshly" not in first and "fraîchement" not in first  # nothing fresh was obtained
    assert "MSS_TEST_TOKEN" in first and "--token-env" in first
    assert "120 s" in first and "--token-command" in first
    assert lines[1:] == ["  [ref2 §2.4]"] and first.endswith("Authentication failed. (AUTHENTICATIONFAILED)")


async def test_a_revoked_app_certificate_is_named_with_what_to_check(
    sandbox_state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with running_sandbox(sandbox_state) as sb:
        bal = next(b for b in sb.info["bals"] if b["address"] == APP)
        assert sb.pki is not None
        sb.pki.revoke(Path(bal["cert"]), reason="keyCompromise")
        argv = ["fetch", *_common(sb, APP, "APP"), "--ca-bundle", sb.info["ca_bundle"], "--cert", bal["cert"],
                "--key", bal["key"]]
        lines = await _err(capsys, argv, 5)
    first = lines[0]
    assert bal["cert"] in first and "--cert" in first
    assert "révoqué" in first and "CRL" in first
    assert first != "mssante : erreur : Authentication failed."
    assert "Réponse du serveur : Authentication failed." in first


async def test_a_refused_token_command_token_says_to_sign_in_again(
    sandbox_state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with running_sandbox(sandbox_state) as sb:
        command = f"{sys.executable} -c \"print('eyJub3QiOiJ2YWxpZCJ9.eyJzdWIiOiJ4In0.c2ln')\""
        argv = ["fetch", *_common(sb, PER, "PER"), "--ca-bundle", sb.info["ca_bundle"], "--token-command", command]
        lines = await _err(capsys, argv, 5)
    first = lines[0]
    assert "--token-command" in first and "second jeton" in first and "Reconnectez-vous" in first
    assert lines[1:] == ["  [ref2 §2.4]"]
