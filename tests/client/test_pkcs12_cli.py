"""``mssante fetch`` with a BAL APP certificate as a PKCS#12 file (an editor's Windows export)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.cli._run import exit_code
from tests.client.test_cli_client import _common
from tests.client.test_mailbox_support import APP, running_sandbox
from tests.client.test_pkcs12 import PASSWORD, WINDOWS, export_p12

pytestmark = pytest.mark.slow


async def test_fetch_with_a_pfx_and_its_password_file_or_variable(
        sandbox_state: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    async with running_sandbox(sandbox_state) as sb:
        bal = next(b for b in sb.info["bals"] if b["address"] == APP)
        pfx = export_p12(tmp_path / "structure.pfx", Path(bal["cert"]), Path(bal["key"]), PASSWORD, extra=WINDOWS)
        secret = tmp_path / "structure.password"
        secret.write_text(PASSWORD + "\n")
        secret.chmod(0o600)
        await sb.store.deliver(APP, b"Subject: par pfx\r\n\r\nBonjour.\r\n")
        base = ["fetch", *_common(sb, APP, "APP"), "--cert", str(pfx)]
        assert await asyncio.to_thread(exit_code, [*base, "--cert-password-file", str(secret)]) == 0
        assert "par pfx" in capsys.readouterr().out
        monkeypatch.setenv("PFX_PASSWORD", PASSWORD)
        assert await asyncio.to_thread(exit_code, [*base, "--cert-password-env", "PFX_PASSWORD"]) == 0
        assert "par pfx" in capsys.readouterr().out
        # a wrong password: a configuration error on one line, no traceback, no password
        monkeypatch.setenv("PFX_PASSWORD", "mauvais-mot-de-passe")
        assert await asyncio.to_thread(exit_code, [*base, "--cert-password-env", "PFX_PASSWORD"]) == 2
        err = capsys.readouterr().err
        assert "the password does not open this PKCS#12" in err and err.count("\n") == 1
        assert "Traceback" not in err and "mauvais" not in err and PASSWORD not in err
        secret.chmod(0o644)
        assert await asyncio.to_thread(exit_code, [*base, "--cert-password-file", str(secret)]) == 2
        assert "chmod 600" in capsys.readouterr().err
        # a PEM certificate without --key
        assert await asyncio.to_thread(exit_code, ["fetch", *_common(sb, APP, "APP"), "--cert", bal["cert"]]) == 2
        assert "--cert avec un fichier PKCS#12 (.p12/.pfx)" in capsys.readouterr().err  # French by default
