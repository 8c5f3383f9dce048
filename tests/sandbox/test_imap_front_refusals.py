"""Every refusal of the IMAP fronts, each shown with a client that would otherwise succeed.

A refusal test only proves something if the same attempt succeeds once the tested defect is
removed, so each case uses a valid token or certificate except for the one defect.
"""

from __future__ import annotations

import base64
import contextlib
import imaplib
import json
import shutil
import ssl

import pytest

from mssante.sandbox.fronts.journal import is_auth_command
from mssante.wire import AuthOutcome
from tests.sandbox._imap_support import (
    APP,
    HOST,
    LOUIS,
    PER,
    IMAPEnv,
    RawIMAP,
    b64,
    imap_env,
    in_thread,
    pki_world,
    run,
    xoauth2,
)

__all__ = ["imap_env", "pki_world"]

DOVECOT_JSON = b'{"status":"401","schemes":"bearer","scope":"mail"}'


# ---------------------------------------------------------------------------- no STARTTLS


async def test_valid_token_without_starttls_is_privacyrequired(imap_env: IMAPEnv) -> None:
    token = imap_env.token()
    raw = await RawIMAP.connect(imap_env.psc_port)
    try:
        refused = await raw.command("a1", "AUTHENTICATE XOAUTH2 " + b64(xoauth2(PER, token)))
        assert refused == ["a1 NO [PRIVACYREQUIRED] Use STARTTLS before authenticating."]
        no_ir = await raw.command("a2", "AUTHENTICATE XOAUTH2")  # refused before any "+": nothing sent in clear
        assert no_ir[-1].startswith("a2 NO [PRIVACYREQUIRED]")
        # Same token, same connection, after STARTTLS: accepted (so the refusal was about TLS only).
        await raw.starttls(imap_env.client_context())
        ok = await raw.command("a3", "AUTHENTICATE XOAUTH2 " + b64(xoauth2(PER, token)))
        assert ok[-1].startswith("a3 OK"), ok
    finally:
        await raw.close()
    [record] = await imap_env.records("imap-psc")
    assert record.credentials_before_tls is True
    assert record.starttls_before_auth is False  # the first attempt came before STARTTLS
    assert [c.outcome for c in record.commands if "AUTHENTICATE" in c.command] == [
        AuthOutcome.PRIVACYREQUIRED, AuthOutcome.PRIVACYREQUIRED, AuthOutcome.OK]
    assert token not in imap_env.journal.dumps_jsonl(imap_env.journal)


def _imaplib_login_in_clear(env: IMAPEnv) -> str:
    client = imaplib.IMAP4(HOST, env.authcli_port, timeout=10)
    try:
        client.login(APP, "x")
    except imaplib.IMAP4.error as exc:
        return str(exc)
    finally:
        client.shutdown()
    return "logged in"


async def test_login_in_clear_on_authcli_is_privacyrequired(imap_env: IMAPEnv) -> None:
    assert "[PRIVACYREQUIRED]" in await in_thread(_imaplib_login_in_clear, imap_env)
    [record] = await imap_env.records("imap-authcli")
    assert record.credentials_before_tls is True and record.mechanism == "LOGIN"


# ---------------------------------------------------------------------------- TLS version


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
@pytest.mark.parametrize("version", ["-tls1_1", "-tls1_2"])
async def test_tls_1_1_is_refused_by_the_server(imap_env: IMAPEnv, version: str) -> None:
    # SECLEVEL=0 lets the client really offer TLS 1.1 (else OpenSSL 3 refuses client-side with
    # "no protocols available" and the test proves nothing). The server's OpenSSL then fails the
    # handshake with UNSUPPORTED_PROTOCOL; asyncio closes without flushing the alert, so the
    # client sees an EOF: the proof is the server-side journal entry. TLS 1.2 is the control.
    code, _out, err = await run(
        "openssl", "s_client", "-starttls", "imap", "-connect", f"{HOST}:{imap_env.psc_port}",
        version, "-cipher", "DEFAULT:@SECLEVEL=0", "-CAfile", str(imap_env.ca_file), stdin=b"",
    )
    [record] = await imap_env.records("imap-psc")
    handshake = record.commands[-1]
    assert handshake.command == "<tls-handshake>"
    assert "no protocols available" not in err
    if version == "-tls1_1":
        assert code != 0
        assert record.tls_version is None and handshake.result == "failed: UNSUPPORTED_PROTOCOL"
    else:
        assert record.tls_version == "TLSv1.2" and handshake.result == "OK TLSv1.2", err


# ---------------------------------------------------------------------------- bearer tokens


def _xoauth2_with_challenges(env: IMAPEnv, user: str, token: str) -> tuple[str, list[bytes]]:
    challenges: list[bytes] = []

    def answer(challenge: bytes) -> bytes:
        challenges.append(challenge)
        return xoauth2(user, token) if not challenge else b"\x01"

    client = imaplib.IMAP4(HOST, env.psc_port, timeout=10)
    try:
        client.starttls(env.client_context())
        client.authenticate("XOAUTH2", answer)
    except imaplib.IMAP4.error as exc:
        return str(exc), challenges
    finally:
        client.shutdown()
    return "OK", challenges


async def test_expired_token_is_authenticationfailed_after_json_challenge(imap_env: IMAPEnv) -> None:
    token = imap_env.token()
    imap_env.world.clock.offset = 3600.0
    result, challenges = await in_thread(_xoauth2_with_challenges, imap_env, PER, token)
    assert "[AUTHENTICATIONFAILED]" in result
    assert challenges == [b"", DOVECOT_JSON]
    [record] = await imap_env.records("imap-psc")
    assert record.auth_result is AuthOutcome.AUTHENTICATIONFAILED
    assert record.auth_detail is not None and "expired" in record.auth_detail
    (auth,) = [c for c in record.commands if "AUTHENTICATE" in c.command]
    assert auth.outcome is AuthOutcome.AUTHENTICATIONFAILED and auth.result == "NO [AUTHENTICATIONFAILED]"


async def test_other_professionals_token_is_authorizationfailed(imap_env: IMAPEnv) -> None:
    result, challenges = await in_thread(_xoauth2_with_challenges, imap_env, PER, imap_env.token(LOUIS))
    assert "[AUTHORIZATIONFAILED]" in result
    assert json.loads(challenges[-1])["status"] == "403"
    [record] = await imap_env.records("imap-psc")
    assert record.identity == LOUIS and record.bal == PER


async def test_psc_unavailable_is_unavailable(imap_env: IMAPEnv) -> None:
    token = imap_env.token()
    imap_env.world.psc.unavailable = True
    try:
        result, _ = await in_thread(_xoauth2_with_challenges, imap_env, PER, token)
    finally:
        imap_env.world.psc.unavailable = False
    assert "[UNAVAILABLE]" in result


async def test_json_challenge_is_sent_before_no(imap_env: IMAPEnv) -> None:
    raw = await RawIMAP.connect(imap_env.psc_port)
    try:
        await raw.starttls(imap_env.client_context())
        await raw.send("a1 AUTHENTICATE XOAUTH2 " + b64(xoauth2(PER, "not-a-jwt")) + "\r\n")
        challenge = await raw.line()
        assert challenge.startswith("+ ")
        assert base64.b64decode(challenge[2:]) == DOVECOT_JSON
        await raw.send("\r\n")  # XOAUTH2 clients answer the error with an empty response
        assert await raw.line() == "a1 NO [AUTHENTICATIONFAILED] Authentication failed."
        # OAUTHBEARER (RFC 7628 §3.2.3): the client answers ^A.
        bad = base64.b64encode(f"n,a={PER},\x01auth=Bearer nope\x01\x01".encode()).decode()
        await raw.send(f"a2 AUTHENTICATE OAUTHBEARER {bad}\r\n")
        assert (await raw.line()).startswith("+ eyJ")
        await raw.send(b64(b"\x01") + "\r\n")
        assert (await raw.line()).startswith("a2 NO [AUTHENTICATIONFAILED]")
    finally:
        await raw.close()


async def test_plain_and_login_not_offered_on_psc_front(imap_env: IMAPEnv) -> None:
    raw = await RawIMAP.connect(imap_env.psc_port)
    try:
        await raw.starttls(imap_env.client_context())
        plain = await raw.command("a1", "AUTHENTICATE PLAIN " + b64(f"\x00{PER}\x00secret".encode()))
        assert plain[-1].startswith("a1 NO [CANNOT]")
        login = await raw.command("a2", f"LOGIN {PER} secret")
        assert login[-1].startswith("a2 NO [CANNOT]")
    finally:
        await raw.close()
    [record] = await imap_env.records("imap-psc")
    assert [c.outcome for c in record.commands if is_auth_command(c.command, "imap")] == [
        AuthOutcome.NOMECHANISM, AuthOutcome.NOMECHANISM]
    assert record.auth_result is AuthOutcome.NOMECHANISM and record.auth_detail == "mechanism not offered"


# ---------------------------------------------------------------------------- certificates


def _cert_plain(env: IMAPEnv, cert_name: str | None, user: str = APP) -> str:
    cert = getattr(env.world.certs, cert_name) if cert_name else None
    client = imaplib.IMAP4(HOST, env.authcli_port, timeout=10)
    try:
        client.starttls(env.client_context(cert))
        client.authenticate("PLAIN", lambda _c: f"\x00{user}\x00x".encode())
    except (imaplib.IMAP4.error, ssl.SSLError, OSError) as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        with contextlib.suppress(OSError):
            client.shutdown()
    return "OK"


async def test_valid_certificate_is_accepted(imap_env: IMAPEnv) -> None:
    assert await in_thread(_cert_plain, imap_env, "hospital") == "OK"


async def test_revoked_certificate_is_refused_at_sasl(imap_env: IMAPEnv) -> None:
    result = await in_thread(_cert_plain, imap_env, "revoked")
    assert "[AUTHENTICATIONFAILED]" in result
    [record] = await imap_env.records("imap-authcli")
    assert record.tls_version is not None  # the handshake passed: revocation is checked at SASL
    assert record.auth_result is AuthOutcome.AUTHENTICATIONFAILED
    assert record.auth_detail is not None and "revoked" in record.auth_detail.lower()


@pytest.mark.parametrize("name", ["foreign", "expired"])
async def test_foreign_or_expired_certificate_ends_at_the_handshake(imap_env: IMAPEnv, name: str) -> None:
    result = await in_thread(_cert_plain, imap_env, name)
    assert result.startswith(("SSLError", "abort", "ConnectionResetError", "SSLEOFError")), result
    [record] = await imap_env.records("imap-authcli")
    assert record.tls_version is None and record.auth_at is None
    assert record.commands[-1].result.startswith("failed")


async def test_certificate_of_another_structure_is_authorizationfailed(imap_env: IMAPEnv) -> None:
    result = await in_thread(_cert_plain, imap_env, "lab")  # OU 318751275100020, BAL of 1750000001
    assert "[AUTHORIZATIONFAILED]" in result
    [record] = await imap_env.records("imap-authcli")
    assert record.identity == "318751275100020" and record.bal == APP


async def test_no_certificate_is_authenticationfailed(imap_env: IMAPEnv) -> None:
    assert "[AUTHENTICATIONFAILED]" in await in_thread(_cert_plain, imap_env, None)


async def test_bearer_on_authcli_front_not_offered(imap_env: IMAPEnv) -> None:
    raw = await RawIMAP.connect(imap_env.authcli_port)
    try:
        await raw.starttls(imap_env.client_context(imap_env.world.certs.hospital))
        caps = await raw.command("c1", "CAPABILITY")
        assert "AUTH=PLAIN" in caps[0] and "XOAUTH2" not in caps[0] and "LOGINDISABLED" not in caps[0]
        refused = await raw.command("a1", "AUTHENTICATE XOAUTH2 " + b64(xoauth2(APP, imap_env.token())))
        assert refused[-1].startswith("a1 NO [CANNOT]")
    finally:
        await raw.close()
