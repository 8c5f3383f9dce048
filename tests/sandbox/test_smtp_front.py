"""SMTP submission fronts driven by Python's smtplib over loopback: the PSC and AUTH_CLI rules."""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import smtplib
import socket
import ssl
import time

import pytest

from mssante.errors import ConfigError, UsageError
from mssante.sandbox.fronts._adapters import PKICertificateChecker, PSCTokenVerifier
from mssante.sandbox.fronts.authz import AccessDecider
from mssante.sandbox.fronts.faults import Faults
from mssante.sandbox.fronts.journal import Journal
from mssante.sandbox.fronts.smtp import Replies, SubmissionFront, SubmissionOptions
from mssante.wire import AuthOutcome
from tests.sandbox._smtp_env import (
    APP,
    CFG,
    LAB_APP,
    LOUIS,
    ORG,
    PER,
    Challenges,
    Env,
    Material,
    MemoryDelivery,
    b64,
    in_thread,
    message,
    smtp_connect,
    start_env,
    xoauth2,
)


def _auth_psc(client: smtplib.SMTP, user: str, token: str) -> Challenges:
    auth = Challenges(user, token)
    client.auth("XOAUTH2", auth, initial_response_ok=False)
    return auth


# ---------------------------------------------------------------------------- PSC front


async def test_xoauth2_send_reaches_the_recipient_with_trace_and_journal(psc: Env, material: Material) -> None:
    token = material.token()

    def run() -> None:
        with smtp_connect(psc) as client:
            assert client.has_extn("size") and client.esmtp_features["size"] == str(25 * 1024 * 1024)
            assert client.has_extn("dsn") and client.has_extn("enhancedstatuscodes")
            assert client.esmtp_features["auth"].split() == ["XOAUTH2", "OAUTHBEARER"]
            _auth_psc(client, PER, token)
            assert client.sendmail(PER, [APP], message(PER, APP)) == {}

    await in_thread(run)
    stored = await psc.delivery.wait_for(APP)
    assert stored[0].startswith(b"Received: from lps.test ([127.0.0.1])\r\n\tby smtp.psc.mss.sandbox.test")
    assert b"with ESMTPSA" in stored[0] and b"Bonjour, corps secret" in stored[0]
    assert psc.delivery.box(PER, "Sent") == []  # copy_to_sent is off by default
    (record,) = psc.records()
    assert record.protocol == "smtp" and record.tls_version in ("TLSv1.2", "TLSv1.3")
    assert record.starttls_before_auth is True and record.credentials_before_tls is False
    assert (record.mechanism, record.identity, record.bal, record.auth_result) == ("XOAUTH2", "899700000001", PER, "OK")


async def test_auth_before_starttls_with_a_valid_token_gets_530(psc: Env, material: Material) -> None:
    token = material.token()

    def run() -> list[tuple[int, bytes]]:
        with smtplib.SMTP("127.0.0.1", psc.port, timeout=10) as client:
            client.ehlo("lps.test")
            assert not client.has_extn("auth")  # never offered in clear
            replies = [client.docmd("AUTH", "XOAUTH2 " + b64(xoauth2(PER, token)))]  # valid, in clear
            replies.append(client.docmd("AUTH", "XOAUTH2"))  # no 334: the client never gets to send a token
            replies.append(client.docmd("MAIL", f"FROM:<{PER}>"))
            return replies

    replies = await in_thread(run)
    for code, text in replies:
        assert code == 530 and text.startswith(b"5.7.0 Must issue a STARTTLS command first")
    (record,) = psc.records()
    assert record.credentials_before_tls is True and record.starttls_before_auth is False
    # Refused before any decision: the journal says why with the outcome, on the session and on each AUTH.
    assert record.auth_result is AuthOutcome.PRIVACYREQUIRED and token not in psc.journal.dumps_jsonl(psc.journal)
    assert [c.outcome for c in record.commands if c.command.startswith("AUTH")] == [AuthOutcome.PRIVACYREQUIRED] * 2
    assert [c.outcome for c in record.commands if c.command.startswith("MAIL")] == [None]


async def test_long_initial_response_is_refused_but_the_token_after_334_passes(psc: Env, material: Material) -> None:
    token = material.token()
    assert len(b64(xoauth2(PER, token))) > 512

    def run() -> tuple[int, bytes]:
        with smtp_connect(psc) as client:
            with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
                client.auth("XOAUTH2", lambda challenge=None: xoauth2(PER, token))  # SASL-IR
            error = refused.value.smtp_error
            assert refused.value.smtp_code == 500 and isinstance(error, bytes) and error.startswith(b"5.5.2 Line too")
            return client.auth("XOAUTH2", lambda challenge=None: xoauth2(PER, token), initial_response_ok=False)

    assert await in_thread(run) == (235, b"2.7.0 Authentication successful")


async def test_line_limit_can_be_lifted(material: Material) -> None:
    env = await start_env(material, "psc", options=SubmissionOptions(auth_line_limit=None))
    token = material.token()

    def run() -> tuple[int, bytes]:
        with smtp_connect(env) as client:
            return client.auth("XOAUTH2", lambda challenge=None: xoauth2(PER, token))

    try:
        assert (await in_thread(run))[0] == 235
    finally:
        await env.front.aclose()


async def test_expired_token_sees_the_json_challenge_then_535(psc: Env, material: Material) -> None:
    token = material.token()
    material.clock.offset = 3600.0
    try:
        def run() -> tuple[Challenges, smtplib.SMTPAuthenticationError]:
            with smtp_connect(psc) as client:
                auth = Challenges(PER, token)
                with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
                    client.auth("XOAUTH2", auth, initial_response_ok=False)
                return auth, refused.value

        auth, error = await in_thread(run)
    finally:
        material.clock.offset = 0.0
    assert len(auth.seen) == 2 and auth.seen[0] == b""
    assert json.loads(auth.seen[1]) == {"status": "401", "schemes": "bearer", "scope": "openid scope_all"}
    assert (error.smtp_code, error.smtp_error) == (535, b"5.7.8 Authentication credentials invalid")
    (record,) = psc.records()
    assert record.auth_result == "AUTHENTICATIONFAILED"
    assert token not in psc.journal.dumps_jsonl(psc.journal)


async def test_another_professionals_token_is_an_authorization_failure(psc: Env, material: Material) -> None:
    token = material.token(LOUIS)

    def run() -> tuple[Challenges, smtplib.SMTPAuthenticationError, tuple[int, bytes]]:
        with smtp_connect(psc) as client:
            auth = Challenges(PER, token)
            with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
                client.auth("XOAUTH2", auth, initial_response_ok=False)
            # the same token opens the ORG BAL Louis holds
            ok = client.auth("XOAUTH2", lambda challenge=None: xoauth2(ORG, token), initial_response_ok=False)
            return auth, refused.value, ok

    auth, error, ok = await in_thread(run)
    assert json.loads(auth.seen[1])["status"] == "403"
    assert error.smtp_code == 535 and error.smtp_error == Replies.AUTHZ_FAILED[4:].encode()
    assert ok[0] == 235


async def test_oauthbearer_refusal_expects_the_0x01_answer_and_psc_down_is_454(psc: Env, material: Material) -> None:
    token = material.token()
    psc.faults.psc_unavailable = True

    def run() -> list[tuple[int, bytes]]:
        with smtp_connect(psc) as client:
            steps = [client.docmd("AUTH", "OAUTHBEARER")]
            steps.append(client.docmd(b64(f"n,a={PER},\x01auth=Bearer {token}\x01\x01")))
            steps.append(client.docmd("AQ=="))
            return steps

    first, challenge, final = await in_thread(run)
    assert first == (334, b"")
    assert challenge[0] == 334 and json.loads(base64.b64decode(challenge[1]))["status"] == "temporarily_unavailable"
    assert final == (454, b"4.7.0 Temporary authentication failure")
    assert not any(c.command == "<sasl-error-ack>" for c in psc.records()[0].commands)


async def test_plain_is_not_offered_on_the_psc_front(psc: Env, material: Material) -> None:
    def run() -> tuple[int, bytes]:
        with smtp_connect(psc) as client:
            return client.docmd("AUTH", "PLAIN " + b64(f"\0{PER}\0secret"))

    assert await in_thread(run) == (504, b"5.5.4 Unrecognized authentication type")
    (record,) = await psc.journal.wait_for(lambda: [r for r in psc.records() if r.ended_at is not None])
    assert [c.outcome for c in record.commands if c.command.startswith("AUTH")] == [AuthOutcome.NOMECHANISM]


async def test_ehlo_is_required_after_starttls_unless_relaxed(psc: Env, material: Material) -> None:
    token = material.token()

    def run(env: Env) -> tuple[int, bytes]:
        with smtp_connect(env, ehlo_again=False) as client:
            reply = client.docmd("AUTH", "XOAUTH2")
            if reply[0] == 334:
                assert client.docmd("*") == (501, b"5.7.0 Authentication cancelled")
            return reply

    assert await in_thread(run, psc) == (503, b"5.5.1 Error: send EHLO first")
    (record,) = await psc.journal.wait_for(lambda: [r for r in psc.records() if r.ended_at is not None])
    assert record.auth_result is AuthOutcome.MALFORMED and record.auth_detail == "AUTH before EHLO"
    relaxed = await start_env(material, "psc", options=SubmissionOptions(strict_ehlo_after_starttls=False))
    try:
        code, _ = await in_thread(run, relaxed)
        assert code == 334
        (record,) = await relaxed.journal.wait_for(
            lambda: [r for r in relaxed.records() if r.ended_at is not None])
        assert [(c.result, c.outcome) for c in record.commands if c.command.startswith("AUTH")] == [
            ("501 5.7.0 Authentication cancelled", AuthOutcome.CANCELLED)]
    finally:
        await relaxed.front.aclose()
    assert token


async def test_sender_must_be_the_authenticated_bal_and_size_is_enforced(material: Material) -> None:
    env = await start_env(material, "psc", max_size=20_000)
    token = material.token()

    def run() -> list[tuple[int, bytes]]:
        with smtp_connect(env) as client:
            assert client.esmtp_features["size"] == "20000"
            _auth_psc(client, PER, token)
            out = [client.docmd("MAIL", f"FROM:<{ORG}>"), client.docmd("MAIL", "FROM:<>"), client.docmd("RSET")]
            out.append(client.docmd("MAIL", f"FROM:<{PER}> SIZE=20001"))
            out.append(client.docmd("MAIL", f"FROM:<{PER}> SIZE=100"))
            out.append(client.docmd("RCPT", f"TO:<{APP}>"))
            out.append(client.docmd("DATA"))
            client.send((b"y" * 70 + b"\r\n") * 400 + b".\r\n")
            out.append(client.getreply())
            out.append(client.docmd("NOOP"))
            return out

    try:
        replies = await in_thread(run)
    finally:
        await env.front.aclose()
    assert replies[0] == (553, b"5.7.1 Sender address not owned by the authenticated user")
    assert replies[1][0] == 250  # the null reverse-path stays allowed: MDNs use it (RFC 8098 §3)
    assert replies[2][0] == 250
    assert replies[3] == (552, b"5.3.4 Message size exceeds fixed maximum message size")
    assert replies[4][0] == 250 and replies[5][0] == 250 and replies[6][0] == 354
    assert replies[7] == (552, b"5.3.4 Message size exceeds fixed maximum message size")
    assert replies[8] == (250, b"2.0.0 OK")
    assert env.delivery.box(APP) == []


async def test_recipients_unknown_and_foreign_are_refused_by_default(psc: Env, material: Material) -> None:
    token = material.token()

    def run() -> list[tuple[int, bytes]]:
        with smtp_connect(psc) as client:
            _auth_psc(client, PER, token)
            client.docmd("MAIL", f"FROM:<{PER}>")
            return [client.docmd("RCPT", "TO:<nobody@mss.sandbox.test>"),
                    client.docmd("RCPT", "TO:<someone@other-operator.fr>")]

    unknown, foreign = await in_thread(run)
    assert unknown == (550, b"5.1.1 Recipient address rejected: user unknown")
    assert foreign == (550, b"5.7.1 Relay access denied")


async def test_malformed_commands_get_5xx_and_the_server_keeps_serving(psc: Env, material: Material) -> None:
    token = material.token()

    def run() -> list[tuple[int, bytes]]:
        with smtp_connect(psc) as client:
            out = [client.docmd("FROBNICATE"), client.docmd("MAIL", "FROM:<x")]
            _auth_psc(client, PER, token)
            out += [client.docmd("MAIL", "FROM:<not an address>"), client.docmd("MAIL", f"FROM:<{PER}> BOGUS=1")]
            out += [client.docmd("RCPT", f"TO:<{APP}>"), client.docmd("MAIL", f"FROM:<{PER}> RET=SOME")]
            out += [client.docmd("MAIL", f"FROM:<{PER}>"), client.docmd("RCPT", f"TO:<{APP}> NOTIFY=NEVER,SUCCESS")]
            out += [client.docmd("AUTH", "XOAUTH2"), client.docmd("DATA")]
            client.send(b"\x00\xff\r\n")
            out.append(client.getreply())
            client.rset()
            assert client.sendmail(PER, [APP], message(PER, APP)) == {}
            return out

    replies = await in_thread(run)
    assert [code for code, _ in replies] == [500, 530, 553, 555, 503, 501, 250, 501, 503, 554, 500]  # 554: RCPT refused
    assert await psc.delivery.wait_for(APP)
    other = await in_thread(lambda: smtp_connect(psc).quit())
    assert other[0] == 221


async def test_a_burst_of_unknown_verbs_is_sent_away_without_a_traceback(
    psc: Env, caplog: pytest.LogCaptureFixture
) -> None:
    """40 unknown verbs in one write after STARTTLS: aiosmtpd closes after its bogus-command budget,
    then its loop still reads the buffered lines and answers a closed TLS transport. That is the
    client being sent away, not a server error: no ERROR record, no traceback (issue 13, fuzzing)."""

    def run() -> bytes:
        with smtp_connect(psc) as client:
            assert client.sock is not None
            client.sock.sendall(b"FROBNICATE\r\n" * 40)
            received = b""
            with contextlib.suppress(OSError):
                while chunk := client.sock.recv(65536):
                    received += chunk
            return received

    with caplog.at_level(logging.INFO):
        received = await in_thread(run)
        await psc.journal.wait_for(lambda: all(r.ended_at is not None for r in psc.records()))
    assert b"Too many unrecognized commands" in received
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info] == []
    other = await in_thread(lambda: smtp_connect(psc).quit())
    assert other[0] == 221


async def test_fault_bye_delay_and_drop(psc: Env, material: Material) -> None:
    token = material.token()
    client = await in_thread(smtp_connect, psc)
    await in_thread(_auth_psc, client, PER, token)
    assert len(psc.faults.sessions(PER)) == 1
    psc.faults.delay = 0.3
    started = time.monotonic()
    assert (await in_thread(client.noop))[0] == 250
    assert time.monotonic() - started >= 0.3
    psc.faults.delay = 0.0
    assert await psc.faults.end_sessions(PER, "bye") == 1
    assert await in_thread(client.getreply) == (421, b"4.4.2 Connection closed by the operator")
    client.close()

    second = await in_thread(smtp_connect, psc)
    await in_thread(_auth_psc, second, PER, token)
    assert await psc.faults.end_sessions(PER, "drop") == 1
    with pytest.raises((smtplib.SMTPServerDisconnected, OSError)):
        await in_thread(second.noop)
    second.close()
    await psc.journal.wait_for(lambda: all(r.ended_at is not None for r in psc.records()))


async def test_front_listens_on_a_given_socket_and_raises_the_tls_floor(material: Material) -> None:
    ctx = material.pki.server_ssl_context()
    ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    faults = Faults()
    decider = AccessDecider(CFG, PSCTokenVerifier(material.psc), PKICertificateChecker(material.pki), faults)
    front = SubmissionFront(CFG, decider, Journal(), faults, MemoryDelivery(), ctx, front="psc")
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2  # ECO.1.1.1
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = await front.start(sock=sock)
        assert port == sock.getsockname()[1] == front.port
        with pytest.raises(UsageError):
            await front.start("127.0.0.1", 0)
        def probe() -> tuple[int, bytes]:
            with smtplib.SMTP("127.0.0.1", port, timeout=5) as client:
                client.ehlo("lps.test")
                return client.docmd("MAIL", f"FROM:<{PER}>")

        reply = await in_thread(probe)
        assert reply == (530, b"5.7.0 Must issue a STARTTLS command first")
        await front.aclose()
        await front.aclose()  # idempotent
    with pytest.raises(ConfigError):
        SubmissionFront(CFG, decider, Journal(), faults, MemoryDelivery(), material.pki.server_ssl_context(),
                        front="authcli")


# ---------------------------------------------------------------------------- AUTH_CLI front


def _plain(bal: str) -> str:
    return b64(f"\0{bal}\0ignored")


async def test_certificate_and_plain_send_from_the_app_bal(authcli: Env, material: Material) -> None:
    def run() -> None:
        with smtp_connect(authcli, material.app_cert) as client:
            assert client.esmtp_features["auth"].split() == ["PLAIN"]
            assert client.docmd("AUTH", "PLAIN " + _plain(APP)) == (235, b"2.7.0 Authentication successful")
            assert client.sendmail(APP, [PER], message(APP, PER)) == {}

    await in_thread(run)
    assert b"corps secret" in (await authcli.delivery.wait_for(PER))[0]
    (record,) = authcli.records()
    assert record.front == "smtp-authcli" and record.auth_result == "OK" and record.identity == "1750000001"
    assert record.client_cert_subject is not None and "OU=1750000001" in record.client_cert_subject


@pytest.mark.parametrize(
    ("which", "bal", "expected"),
    [
        ("revoked", APP, Replies.AUTH_INVALID),
        ("lab", APP, Replies.AUTHZ_FAILED),  # OU 318751275100020 is not dpi.hopital's structure
        ("none", APP, Replies.AUTH_INVALID),
        ("app", PER, Replies.AUTHZ_FAILED),  # a PER BAL needs a PSC token
    ],
)
async def test_authcli_refusals(authcli: Env, material: Material, which: str, bal: str, expected: str) -> None:
    cert = {"revoked": material.negative["revoked"], "lab": material.lab_cert, "none": None,
            "app": material.app_cert}[which]

    def run() -> tuple[int, bytes]:
        with smtp_connect(authcli, cert) as client:
            return client.docmd("AUTH", "PLAIN " + _plain(bal))

    code, text = await in_thread(run)
    assert f"{code} {text.decode()}" == expected
    assert "ignored" not in authcli.journal.dumps_jsonl(authcli.journal)


async def test_foreign_ca_certificate_fails_the_handshake(authcli: Env, material: Material) -> None:
    def run() -> None:
        client = smtplib.SMTP("127.0.0.1", authcli.port, timeout=10)
        try:
            client.ehlo("lps.test")
            client.starttls(context=material.client_context(material.negative["foreign"]))
            client.ehlo("lps.test")
            client.docmd("AUTH", "PLAIN " + _plain(APP))
        finally:
            client.close()

    with pytest.raises((ssl.SSLError, smtplib.SMTPServerDisconnected, ConnectionError)):
        await in_thread(run)
    (record,) = await authcli.journal.wait_for(lambda: [r for r in authcli.records() if r.ended_at is not None])
    starttls = [c for c in record.commands if c.command == "STARTTLS"]
    assert starttls and starttls[0].result.startswith("TLS handshake failed")
    assert record.tls_version is None and record.auth_result is None


async def test_bearer_is_not_offered_on_the_authcli_front(authcli: Env, material: Material) -> None:
    def run() -> tuple[int, bytes]:
        with smtp_connect(authcli, material.app_cert) as client:
            return client.docmd("AUTH", "XOAUTH2")

    assert (await in_thread(run))[0] == 504
    assert LAB_APP
