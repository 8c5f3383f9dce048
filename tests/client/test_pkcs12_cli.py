"""``mssante fetch`` with a BAL APP certificate as a PKCS#12 file (an editor's Windows export)."""

from __future__ import annotations

import asyncio
import re
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
        # a wrong password: a configuration error on one line, in the user's language, no traceback, no password
        monkeypatch.setenv("PFX_PASSWORD", "mauvais-mot-de-passe")
        assert await asyncio.to_thread(exit_code, [*base, "--cert-password-env", "PFX_PASSWORD"]) == 2
        err = capsys.readouterr().err
        assert err == (f"mssante : erreur : le mot de passe donné (--cert-password-file ou --cert-password-env) "
                       f"n'ouvre pas {pfx}\n")
        assert await asyncio.to_thread(exit_code, ["--lang", "en", *base, "--cert-password-env", "PFX_PASSWORD"]) == 2
        err = capsys.readouterr().err
        assert err == (f"mssante: error: the password given (--cert-password-file or --cert-password-env) "
                       f"does not open {pfx}\n")
        assert await asyncio.to_thread(exit_code, base) == 2  # no password at all
        assert "--cert-password-file FICHIER ou --cert-password-env VARIABLE" in capsys.readouterr().err
        secret.chmod(0o644)
        assert await asyncio.to_thread(exit_code, [*base, "--cert-password-file", str(secret)]) == 2
        assert capsys.readouterr().err == (f"mssante : erreur : {secret} ne doit être lisible ni par le groupe ni par "
                                           "les autres (chmod 600)\n")
        # an expired certificate is refused before any connection, with its date
        negatives = sb.pki.issue_negative_certs()
        expired = export_p12(tmp_path / "expired.p12", negatives["expired"].cert_path, negatives["expired"].key_path,
                             PASSWORD)
        secret.chmod(0o600)
        code = await asyncio.to_thread(exit_code, ["fetch", *_common(sb, APP, "APP"), "--cert", str(expired),
                                                   "--cert-password-file", str(secret)])
        assert code == 2 and re.fullmatch(rf"mssante : erreur : le certificat {re.escape(str(expired))} a expiré le "
                                          r"\d\d/\d\d/\d{4} : demandez à l'IGC Santé un nouveau certificat ORG "
                                          r"AUTH_CLI\n", capsys.readouterr().err)
        # a PEM certificate without --key
        assert await asyncio.to_thread(exit_code, ["fetch", *_common(sb, APP, "APP"), "--cert", bal["cert"]]) == 2
        assert "--cert avec un fichier PKCS#12 (.p12/.pfx)" in capsys.readouterr().err  # French by default
