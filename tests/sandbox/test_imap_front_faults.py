"""Robustness (malformed input, size caps), the journal, and fault injection on the IMAP fronts."""

from __future__ import annotations

import asyncio
import imaplib
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mssante.errors import UsageError
from mssante.sandbox.fronts._adapters import PKICertificateChecker, PSCTokenVerifier
from mssante.sandbox.fronts.authz import AccessDecider
from mssante.sandbox.fronts.delivery import MailDelivery
from mssante.sandbox.fronts.imap import IMAPFront
from mssante.wire import AuthOutcome
from tests.sandbox._imap_support import (
    CFG,
    ORG,
    PER,
    IMAPEnv,
    PKIWorld,
    RawIMAP,
    b64,
    imap_env,
    imaplib_psc_login,
    in_thread,
    message,
    pki_world,
    start_env,
    xoauth2,
)

__all__ = ["imap_env", "pki_world"]

SMALL_LITERAL = 64 * 1024


@pytest.fixture
async def small_env(pki_world: PKIWorld) -> AsyncIterator[IMAPEnv]:
    env = await start_env(pki_world, max_literal=SMALL_LITERAL)
    try:
        yield env
    finally:
        await env.psc_front.aclose()
        await env.authcli_front.aclose()


async def _logged_in(env: IMAPEnv, user: str = PER) -> RawIMAP:
    raw = await RawIMAP.connect(env.psc_port)
    await raw.starttls(env.client_context())
    ok = await raw.command("a0", "AUTHENTICATE XOAUTH2 " + b64(xoauth2(user, env.token())))
    assert ok[-1].startswith("a0 OK"), ok
    return raw


async def _still_serves(env: IMAPEnv, other: RawIMAP) -> None:
    await env.store.deliver(PER, message("toujours la"))
    lines = await other.command("z1", "SELECT INBOX")
    assert lines[-1].startswith("z1 OK") and any(line.endswith("EXISTS") for line in lines)
    fetched = await other.command("z2", "UID FETCH 1:* (BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert any("toujours la" in line for line in fetched)


# ---------------------------------------------------------------------------- robustness


async def test_malformed_commands_get_bad_and_a_parallel_session_keeps_working(small_env: IMAPEnv) -> None:
    other = await _logged_in(small_env)
    raw = await _logged_in(small_env)
    try:
        for tag, text in [("b1", "FROB"), ("b2", "FETCH"), ("b3", "SELECT"), ("b4", "UID FETCH x:y (FLAGS)"),
                          ("b5", 'LIST "" ('), ("b6", "APPEND INBOX {abc}"), ("n0", "NOOP"),
                          # pymap's modified UTF-7 decoder loops forever on these; the front refuses them
                          ("b7", 'SELECT "&Jjo"'), ("b8", 'LSUB "" "&Jjo"'), ("b9", 'LIST "" "a&AAA"')]:
            lines = await raw.command(tag, text)
            assert lines[-1].startswith(f"{tag} {'OK' if tag == 'n0' else 'BAD'}"), (text, lines)
        await raw.send(b"\x00\xff\xfe garbage\r\n")
        assert (await raw.line()).split()[1] == "BAD"
        lines = await raw.command("n1", "NOOP")  # the session survived all of that
        assert lines[-1].startswith("n1 OK")
        await _still_serves(small_env, other)
    finally:
        await raw.close()
        await other.close()


async def test_malformed_sasl_gets_bad(imap_env: IMAPEnv) -> None:
    raw = await RawIMAP.connect(imap_env.psc_port)
    try:
        await raw.starttls(imap_env.client_context())
        assert (await raw.command("a1", "AUTHENTICATE XOAUTH2 !!!notbase64"))[-1].startswith("a1 BAD")
        assert (await raw.command("a2", "AUTHENTICATE XOAUTH2 " + b64(b"garbage")))[-1].startswith("a2 BAD")
        await raw.send("a3 AUTHENTICATE OAUTHBEARER\r\n")
        assert await raw.line() == "+ "
        await raw.send("*\r\n")  # RFC 3501 §6.2.2: cancel
        assert (await raw.line()).startswith("a3 BAD")
        ok = await raw.command("a4", "AUTHENTICATE XOAUTH2 " + b64(xoauth2(PER, imap_env.token())))
        assert ok[-1].startswith("a4 OK")
    finally:
        await raw.close()
    # The journal keeps each answer's outcome: not base64 and not XOAUTH2 are malformed, "*" cancels.
    [record] = await imap_env.records("imap-psc")
    outcomes = [(c.result, c.outcome) for c in record.commands if "AUTHENTICATE" in c.command]
    assert outcomes == [("BAD", AuthOutcome.MALFORMED), ("BAD", AuthOutcome.MALFORMED),
                        ("BAD", AuthOutcome.CANCELLED), ("OK", AuthOutcome.OK)]
    assert record.auth_result is AuthOutcome.OK


async def test_oversized_literals_and_lines_are_refused(small_env: IMAPEnv) -> None:
    other = await _logged_in(small_env)
    try:
        # Synchronizing literal: refused before "+", nothing is read (RFC 3501 §7.5, RFC 7889).
        raw = await _logged_in(small_env)
        await raw.send(f"t1 APPEND INBOX {{{SMALL_LITERAL + 1}}}\r\n")
        assert (await raw.line()).startswith("t1 BAD [TOOBIG]")
        assert (await raw.command("t2", "NOOP"))[-1].startswith("t2 OK")
        await raw.close()
        # Non-synchronizing literal (LITERAL+): refused, then the connection is closed (RFC 7888 §4).
        raw = await _logged_in(small_env)
        await raw.send(f"t3 APPEND INBOX {{{100 * 1024 * 1024}+}}\r\n" + "x" * 1000)
        assert (await raw.line()).startswith("t3 BAD [TOOBIG]")
        assert (await raw.line()).startswith("* BYE")
        await raw.close()
        # A command line longer than the line cap.
        raw = await _logged_in(small_env)
        await raw.send("t4 SEARCH SUBJECT " + "a" * 200_000 + "\r\n")
        assert (await raw.line()).startswith("* BAD [TOOBIG]")
        await raw.close()
        await _still_serves(small_env, other)
        assert len(await small_env.store.list_messages(PER)) == 1
    finally:
        await other.close()


async def test_append_within_the_limit_works(small_env: IMAPEnv) -> None:
    raw = await _logged_in(small_env)
    try:
        body = message("append", body="x" * 10_000)
        await raw.send(f"p1 APPEND Sent (\\Seen) {{{len(body)}}}\r\n")
        assert (await raw.line()).startswith("+")
        await raw.send(body + b"\r\n")
        lines = await raw.until("p1")
        assert lines[-1].startswith("p1 OK [APPENDUID ")
    finally:
        await raw.close()
    [stored] = await small_env.store.list_messages(PER, "Sent")
    assert stored.flags == ("\\Seen",) and stored.headers["Subject"] == "append"
    assert await small_env.store.get_message(PER, "Sent", stored.uid) == body
    await small_env.store.reset(PER)
    assert await small_env.store.list_messages(PER, "Sent") == []


# ---------------------------------------------------------------------------- journal


async def test_journal_records_tls_and_auth_without_secrets(imap_env: IMAPEnv, tmp_path: Path) -> None:
    token = imap_env.token()
    raw = await RawIMAP.connect(imap_env.psc_port)
    await raw.starttls(imap_env.client_context())
    await raw.command("a1", "AUTHENTICATE XOAUTH2 " + b64(xoauth2(PER, token)))
    await raw.send("a2 AUTHENTICATE OAUTHBEARER\r\n")  # interactive form: the token goes on its own line
    await raw.line()
    await raw.command("a3", "LOGOUT")
    await raw.close()
    raw = await RawIMAP.connect(imap_env.psc_port)
    await raw.starttls(imap_env.client_context())
    await raw.send("b1 AUTHENTICATE OAUTHBEARER\r\n")
    assert await raw.line() == "+ "
    await raw.send(b64(f"n,a={PER},\x01auth=Bearer {token}\x01\x01".encode()) + "\r\n")
    assert (await raw.line()).startswith("b1 OK")
    await raw.command("b2", "LOGOUT")
    await raw.close()
    path = tmp_path / "journal.jsonl"
    imap_env.journal.export_jsonl(path)
    text = path.read_text()
    assert token not in text and b64(xoauth2(PER, token)) not in text
    assert token.split(".")[1] not in text  # not even the JWT payload
    first, second = await imap_env.records("imap-psc")
    for record in (first, second):
        assert record.starttls_before_auth is True and record.tls_version and record.tls_cipher
        assert record.identity == "899700000001" and record.auth_result == "OK" and record.ended_at
    assert first.mechanism == "XOAUTH2" and second.mechanism == "OAUTHBEARER"
    commands = [c.command for c in first.commands]
    assert commands[:3] == ["s1 STARTTLS", "<tls-handshake>", "a1 AUTHENTICATE XOAUTH2 <initial-response>"]


# ---------------------------------------------------------------------------- faults


def _wait_for_bye(env: IMAPEnv, token: str, ready: asyncio.Event, loop: asyncio.AbstractEventLoop) -> bytes:
    client = imaplib_psc_login(env, PER, token)
    client.select("INBOX")
    loop.call_soon_threadsafe(ready.set)
    try:
        line = client.readline()  # nothing is pending: the next line is the server's BYE
        with pytest.raises(imaplib.IMAP4.abort):
            client.noop()
        return line
    finally:
        client.shutdown()


async def test_end_sessions_bye_reaches_an_imaplib_client(imap_env: IMAPEnv) -> None:
    ready = asyncio.Event()
    task = asyncio.create_task(in_thread(_wait_for_bye, imap_env, imap_env.token(), ready, asyncio.get_running_loop()))
    await asyncio.wait_for(ready.wait(), 10)
    assert [s.front for s in imap_env.faults.sessions(PER)] == ["imap-psc"]
    assert await imap_env.faults.end_sessions(PER, "bye") == 1
    line = await asyncio.wait_for(task, 10)
    assert line.startswith(b"* BYE [UNAVAILABLE]")
    assert imap_env.faults.sessions() == []


async def test_end_sessions_drop_cuts_the_connection(imap_env: IMAPEnv) -> None:
    raw = await _logged_in(imap_env, ORG)
    assert await imap_env.faults.end_sessions(ORG, "drop") == 1
    assert await raw.line() == ""  # EOF without BYE
    await raw.close()


@pytest.mark.parametrize("code", ["AUTHENTICATIONFAILED", "AUTHORIZATIONFAILED", "UNAVAILABLE"])
async def test_fail_next_auth_gives_the_chosen_code(imap_env: IMAPEnv, code: str) -> None:
    imap_env.faults.fail_next_auth(1, code, bal=PER)  # type: ignore[arg-type]
    raw = await RawIMAP.connect(imap_env.psc_port)
    try:
        await raw.starttls(imap_env.client_context())
        await raw.send("a1 AUTHENTICATE XOAUTH2 " + b64(xoauth2(PER, imap_env.token())) + "\r\n")
        assert (await raw.line()).startswith("+ ")  # bearer refusal: JSON challenge first
        await raw.send("\r\n")
        assert (await raw.line()).startswith(f"a1 NO [{code}]")
        ok = await raw.command("a2", "AUTHENTICATE XOAUTH2 " + b64(xoauth2(PER, imap_env.token())))
        assert ok[-1].startswith("a2 OK")  # only the next one failed
    finally:
        await raw.close()


async def test_delay_applies_before_responses(imap_env: IMAPEnv) -> None:
    raw = await _logged_in(imap_env)
    try:
        imap_env.faults.delay = 0.3
        started = time.monotonic()
        assert (await raw.command("d1", "NOOP"))[-1].startswith("d1 OK")
        assert time.monotonic() - started >= 0.3
    finally:
        imap_env.faults.clear()
        await raw.close()


async def test_certificate_session_registered_and_ended(imap_env: IMAPEnv) -> None:
    def login() -> imaplib.IMAP4:
        client = imaplib.IMAP4("127.0.0.1", imap_env.authcli_port, timeout=10)
        client.starttls(imap_env.client_context(imap_env.world.certs.hospital))
        client.login("dpi.hopital@mss.sandbox.test", "x")
        return client

    client = await in_thread(login)
    try:
        [session] = imap_env.faults.sessions("dpi.hopital@mss.sandbox.test")
        assert session.front == "imap-authcli"
        assert await imap_env.faults.end_sessions(mode="bye") == 1
        assert (await in_thread(client.readline)).startswith(b"* BYE [UNAVAILABLE]")
    finally:
        client.shutdown()


async def test_plaintext_pipelined_after_starttls_is_refused(imap_env: IMAPEnv) -> None:
    raw = await RawIMAP.connect(imap_env.psc_port)
    try:
        # A command injected behind STARTTLS in the same packet would otherwise run "inside" TLS.
        await raw.send("s1 STARTTLS\r\nc1 CAPABILITY\r\n")
        assert (await raw.line()).startswith("s1 BAD")
        assert await raw.line() == ""  # closed
    finally:
        await raw.close()


async def test_silent_client_is_logged_out_and_prebound_socket(pki_world: PKIWorld) -> None:
    env = await start_env(pki_world)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    front = IMAPFront(CFG, AccessDecider(CFG, PSCTokenVerifier(pki_world.psc), PKICertificateChecker(pki_world.pki),
                                         env.faults),
                      env.journal, env.faults, env.store, pki_world.pki.server_ssl_context(), preauth_timeout=0.3)
    try:
        port = await front.start(sock=sock)
        assert port == sock.getsockname()[1] == front.port
        raw = await RawIMAP.connect(port)
        assert (await raw.line()).startswith("* BYE Autologout")
        await raw.close()
        delivery: MailDelivery = env.store  # the SMTP front's seam (checked by mypy)
        with pytest.raises(UsageError):
            await delivery.deliver("nobody@mss.sandbox.test", message())
        assert not env.store.has_mailbox("nobody@mss.sandbox.test") and env.store.has_mailbox(PER.upper())
    finally:
        await front.aclose()
        await env.psc_front.aclose()
        await env.authcli_front.aclose()


async def test_over_long_sasl_continuation_is_refused_and_closed(imap_env: IMAPEnv) -> None:
    other = await _logged_in(imap_env)
    raw = await RawIMAP.connect(imap_env.psc_port)
    try:
        await raw.starttls(imap_env.client_context())
        await raw.send("a1 AUTHENTICATE XOAUTH2\r\n")
        assert await raw.line() == "+ "
        await raw.send("A" * 100_000 + "\r\n")
        lines = [await raw.line(), await raw.line()]
        assert lines[0].startswith("* BYE") and lines[1].startswith("a1 BAD [TOOBIG]"), lines
        await _still_serves(imap_env, other)
    finally:
        await raw.close()
        await other.close()
    records = await imap_env.records("imap-psc")
    (too_big,) = [r for r in records if r.auth_result is AuthOutcome.TOOBIG]
    assert [c.outcome for c in too_big.commands if "AUTHENTICATE" in c.command] == [AuthOutcome.TOOBIG]
