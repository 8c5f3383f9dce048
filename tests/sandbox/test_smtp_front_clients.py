"""SMTP submission fronts against independent clients: curl, msmtp and openssl s_client.

Needs the Debian packages ``curl``, ``openssl`` and ``msmtp`` (a test is skipped when its binary
is missing).
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from tests.sandbox._smtp_env import (
    APP,
    PER,
    Env,
    Material,
    b64,
    message,
)

pytestmark = pytest.mark.slow


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed (apt-get install -y {tool})")
    return path


async def _run(*argv: str, stdin: bytes = b"") -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(stdin), 20.0)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode("utf-8", "replace")








def _eml(tmp_path: Path, sender: str, rcpt: str, subject: str) -> Path:
    path = tmp_path / "message.eml"
    path.write_bytes(message(sender, rcpt, subject=subject))
    return path


async def test_curl_oauthbearer(psc: Env, material: Material, tmp_path: Path) -> None:
    curl = _need("curl")
    code, out = await _run(
        curl, "-sS", "--ssl-reqd", "--cacert", str(material.pki.ca_bundle_path), f"smtp://127.0.0.1:{psc.port}/lps.test",
        "--mail-from", PER, "--mail-rcpt", APP, "--upload-file", str(_eml(tmp_path, PER, APP, "via curl")),
        "--user", f"{PER}:", "--oauth2-bearer", material.token(),
    )
    assert code == 0, out
    assert b"Subject: via curl" in (await psc.delivery.wait_for(APP))[0]
    (record,) = psc.records()
    assert record.mechanism == "OAUTHBEARER" and record.auth_result == "OK" and record.starttls_before_auth


async def test_curl_client_certificate_and_plain(authcli: Env, material: Material, tmp_path: Path) -> None:
    curl = _need("curl")
    cert = material.app_cert
    code, out = await _run(
        curl, "-sS", "--ssl-reqd", "--cacert", str(material.pki.ca_bundle_path), f"smtp://127.0.0.1:{authcli.port}",
        "--cert", str(cert.cert_path), "--key", str(cert.key_path), "--login-options", "AUTH=PLAIN",
        "--user", f"{APP}:ignored", "--mail-from", APP, "--mail-rcpt", PER,
        "--upload-file", str(_eml(tmp_path, APP, PER, "curl mTLS")),
    )
    assert code == 0, out
    assert b"Subject: curl mTLS" in (await authcli.delivery.wait_for(PER))[0]
    assert authcli.records()[0].mechanism == "PLAIN"


def _msmtprc(tmp_path: Path, material: Material, port: int, lines: list[str]) -> Path:
    rc = tmp_path / "msmtprc"
    rc.write_text("\n".join([
        "defaults", "tls on", "tls_starttls on", f"tls_trust_file {material.pki.ca_bundle_path}", "domain lps.test",
        "account test", "host 127.0.0.1", f"port {port}", *lines, "",
    ]))
    rc.chmod(0o600)
    return rc


async def test_msmtp_xoauth2(psc: Env, material: Material, tmp_path: Path) -> None:
    msmtp = _need("msmtp")
    token_file = tmp_path / "token"
    token_file.write_text(material.token())
    rc = _msmtprc(tmp_path, material, psc.port, [
        f"from {PER}", "auth xoauth2", f"user {PER}", f"passwordeval cat {token_file}",
    ])
    code, out = await _run(msmtp, "-C", str(rc), "-a", "test", APP, stdin=message(PER, APP, subject="via msmtp"))
    assert code == 0, out
    assert b"Subject: via msmtp" in (await psc.delivery.wait_for(APP))[0]
    (record,) = psc.records()
    assert record.mechanism == "XOAUTH2" and record.auth_result == "OK"
    # msmtp sends the token after 334, never as an over-long initial response
    assert [c.command for c in record.commands if c.command.startswith("AUTH")] == ["AUTH XOAUTH2"]


async def test_msmtp_certificate_and_plain(authcli: Env, material: Material, tmp_path: Path) -> None:
    msmtp = _need("msmtp")
    cert = material.app_cert
    rc = _msmtprc(tmp_path, material, authcli.port, [
        f"from {APP}", "auth plain", f"user {APP}", "password ignored",
        f"tls_cert_file {cert.cert_path}", f"tls_key_file {cert.key_path}",
    ])
    code, out = await _run(msmtp, "-C", str(rc), "-a", "test", PER, stdin=message(APP, PER, subject="msmtp mTLS"))
    assert code == 0, out
    assert b"Subject: msmtp mTLS" in (await authcli.delivery.wait_for(PER))[0]


async def test_openssl_s_client_certificate_session(authcli: Env, material: Material) -> None:
    openssl = _need("openssl")
    cert = material.app_cert
    script = "\r\n".join([
        "EHLO lps.test", "AUTH PLAIN " + b64(f"\0{APP}\0x"), f"MAIL FROM:<{APP}>",
        f"RCPT TO:<{PER}> NOTIFY=SUCCESS ORCPT=rfc822;{PER}", "DATA",
        message(APP, PER, subject="s_client").decode().rstrip("\r\n"), ".", "QUIT", "",
    ]).encode()
    _, out = await _run(
        openssl, "s_client", "-quiet", "-starttls", "smtp", "-connect", f"127.0.0.1:{authcli.port}",
        "-CAfile", str(material.pki.ca_bundle_path), "-cert", str(cert.cert_path), "-key", str(cert.key_path),
        "-verify_return_error", stdin=script,
    )
    assert "235 2.7.0" in out and "250 2.0.0 Ok: queued as" in out and "221 2.0.0" in out, out
    assert b"Subject: s_client" in (await authcli.delivery.wait_for(PER))[0]
    assert b"Action: delivered" in (await authcli.delivery.wait_for(APP))[0]  # NOTIFY=SUCCESS


async def test_tls_1_1_is_refused_by_the_server(psc: Env, material: Material) -> None:
    openssl = _need("openssl")
    code, out = await _run(
        openssl, "s_client", "-starttls", "smtp", "-connect", f"127.0.0.1:{psc.port}", "-tls1_1",
        "-cipher", "DEFAULT:@SECLEVEL=0", stdin=b"",
    )
    assert code != 0 and "Cipher is (NONE)" in out, out
    (record,) = await psc.journal.wait_for(lambda: [r for r in psc.records() if r.ended_at is not None])
    (starttls,) = [c for c in record.commands if c.command == "STARTTLS"]
    # the server saw a TLS 1.1 ClientHello and refused it: the refusal is not client-side
    assert "UNSUPPORTED_PROTOCOL" in starttls.result or "unsupported protocol" in starttls.result, starttls.result
    assert record.tls_version is None
