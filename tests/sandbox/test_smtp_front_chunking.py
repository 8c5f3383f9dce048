"""CHUNKING (RFC 3030, ``BDAT``) on the sandbox submission fronts, as Postfix offers it.

Wire transcripts over a raw TLS socket (none of curl, msmtp or smtplib can send ``BDAT``): one
chunk, several chunks, ``BDAT 0 LAST``, pipelined transactions, refusals (the refused chunk is
read and dropped: octets that look like commands are never run), oversize, DATA after BDAT, a
connection dropped mid-chunk; then our client sending through the front (one write per
message), ``chunking = false`` keeping the DATA path, and a hypothesis property: any cutting of
a message into chunks delivers the same octets.
"""

from __future__ import annotations

import contextlib
import imaplib
import itertools
import re
import socket
import ssl
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import aiosmtplib
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mssante.client import SMTPSubmission
from mssante.client._smtp_auth import authenticate, starttls
from mssante.errors import ConfigError
from mssante.sandbox.config import SubmissionSettings, default_config, load_config
from mssante.sandbox.fronts.smtp import Replies, SubmissionOptions
from mssante.sandbox.fronts.smtp_data import BodyLimits, parse_bdat
from mssante.sandbox.runner import Sandbox
from mssante.secret import Secret
from mssante.testing import running_sandbox
from mssante.wire.sasl import XOAuth2Client
from tests._hypothesis import examples
from tests.client.test_smtp_pipelining import record_writes
from tests.sandbox._smtp_env import APP, DOMAIN, PER, Env, Material, in_thread, message, start_env
from tests.sandbox.test_smtp_front_pipelining import UNKNOWN, Wire, _ehlo, _secure

QUEUED = re.compile(r"^250 2\.0\.0 Ok: (\d+) bytes queued as [0-9A-F]+$")
#: Dot lines, a CRLF.CRLF that is not an end, bare CR and LF, 8-bit octets, no final CRLF.
TRICKY = (b"Subject: chunks\r\nContent-Type: text/plain; charset=latin-1\r\n\r\n"
          b".\r\n..two\r\n.one\r\nbare\nlf and bare\rcr\r\n\xe9t\xe9 \xff\x80\r\n\r\n.\r\nQUIT\r\nend")


def _strip_received(copy: bytes) -> bytes:
    rest = copy.partition(b"\r\n")[2]
    while rest[:1] == b"\t":  # the folded lines of our Received: field
        rest = rest.partition(b"\r\n")[2]
    return rest


@contextlib.contextmanager
def _wire(env: Env, material: Material) -> Iterator[Wire]:
    """An authenticated TLS wire (EHLO, STARTTLS, EHLO, AUTH), closed on exit."""
    steps = _secure(env, material)
    wire = next(steps)
    try:
        yield wire
    finally:
        wire.file.close()
        steps.close()


def _run(env: Env, material: Material, data: bytes, count: int) -> list[str]:
    """After EHLO/STARTTLS/AUTH: send ``data`` in one write, read ``count`` replies."""
    with _wire(env, material) as wire:
        wire.send(data)
        return wire.replies(count)


def _envelope(rcpt: str = APP) -> bytes:
    return f"MAIL FROM:<{PER}>\r\nRCPT TO:<{rcpt}>\r\n".encode()


def _bdat(chunk: bytes, last: bool = False) -> bytes:
    return b"BDAT %d%s\r\n" % (len(chunk), b" LAST" if last else b"") + chunk


async def test_chunking_is_offered_after_starttls_without_binarymime(psc: Env, material: Material) -> None:
    def run() -> tuple[list[str], list[str]]:
        raw = socket.create_connection(("127.0.0.1", psc.port), timeout=10)
        with raw:
            plain = Wire(raw)
            plain.reply()
            plain.send(b"EHLO lps.test\r\n")
            clear = plain.reply()
        with _wire(psc, material) as wire:
            return clear, list(wire.ehlo)  # type: ignore[attr-defined]

    clear, secure = await in_thread(run)
    assert "250-CHUNKING" not in clear and "250-CHUNKING" in secure
    assert not any("BINARYMIME" in line for line in clear + secure)


async def test_one_chunk_pipelined_with_the_envelope(psc: Env, material: Material) -> None:
    data = message(PER, APP, subject="un seul morceau")
    got = await in_thread(_run, psc, material, _envelope() + _bdat(data, last=True) + b"NOOP\r\n", 4)
    assert got[:2] == ["250 2.1.0 Sender OK", "250 2.1.5 Recipient OK"]
    assert QUEUED.match(got[2]) and QUEUED.match(got[2]).group(1) == str(len(data))  # type: ignore[union-attr]
    assert got[3] == "250 2.0.0 OK"
    (stored,) = await psc.delivery.wait_for(APP)
    assert stored.startswith(b"Received: from lps.test") and b"with ESMTPSA id" in stored
    assert _strip_received(stored) == data
    (record,) = psc.records()
    assert [c.command for c in record.commands][-2:] == [f"BDAT {len(data)} LAST", "NOOP"]
    (entry,) = record.messages
    assert entry["via"] == "BDAT" and entry["size"] == len(data) and entry["delivered"] == [APP]
    assert entry["headers"]["Subject"] == ["un seul morceau"]


async def test_several_chunks_then_bdat_0_last_deliver_the_octets_as_sent(psc: Env, material: Material) -> None:
    """Chunks cut inside a CRLF and inside ``CRLF.CRLF``; dot lines, bare CR/LF and 8-bit octets intact."""
    at = TRICKY.index(b"\r\n..two") + 1
    cuts = [TRICKY[:at], TRICKY[at:at + 1], TRICKY[at + 1:-12], TRICKY[-12:]]
    assert b"".join(cuts) == TRICKY and cuts[0].endswith(b"\r") and cuts[1] == b"\n"
    wire_data = _envelope() + b"".join(_bdat(c) for c in cuts) + _bdat(b"", last=True)
    got = await in_thread(_run, psc, material, wire_data, 7)
    assert got[2:6] == [f"250 2.0.0 Ok: {len(c)} bytes" for c in cuts]
    assert QUEUED.match(got[6]) and str(len(TRICKY)) in got[6]
    (stored,) = await psc.delivery.wait_for(APP)
    assert _strip_received(stored) == TRICKY  # no dot-stuffing undone, no line end changed, nothing added


async def test_pipelined_transactions_get_their_replies_in_order(psc: Env, material: Material) -> None:
    one, two = message(PER, APP, subject="premier"), message(PER, APP, subject="second")
    data = (_envelope() + _bdat(one, last=True) + f"MAIL FROM:<{PER}>\r\nRCPT TO:<{UNKNOWN}>\r\n".encode()
            + _bdat(b"refused chunk\r\nQUIT\r\n", last=True) + b"RSET\r\n"
            + _envelope() + _bdat(two[:10]) + _bdat(two[10:], last=True) + b"QUIT\r\n")
    got = await in_thread(_run, psc, material, data, 12)
    assert QUEUED.match(got[2])
    assert got[3:7] == ["250 2.1.0 Sender OK", Replies.UNKNOWN_USER, Replies.NO_VALID_RCPT, "250 2.0.0 OK"]
    assert got[7:10] == ["250 2.1.0 Sender OK", "250 2.1.5 Recipient OK", "250 2.0.0 Ok: 10 bytes"]
    assert QUEUED.match(got[10]) and got[11] == "221 2.0.0 Bye"
    stored = await psc.delivery.wait_for(APP, 2)
    assert [_strip_received(s) for s in stored] == [one, two]


async def test_refused_bdat_chunks_are_read_never_run_as_commands(psc: Env, material: Material) -> None:
    """BDAT without MAIL, without RCPT, null BDAT: 503/551 after the chunk was read (RFC 3030 §2)."""
    trap = b"MAIL FROM:<" + PER.encode() + b">\r\nQUIT\r\n"
    data = (_bdat(trap, last=True) + f"MAIL FROM:<{PER}>\r\n".encode() + _bdat(trap)
            + f"RCPT TO:<{APP}>\r\n".encode() + b"BDAT 0\r\n" + b"NOOP\r\n")
    got = await in_thread(_run, psc, material, data, 6)
    assert got == [Replies.NEED_MAIL, "250 2.1.0 Sender OK", Replies.NEED_RCPT, "250 2.1.5 Recipient OK",
                   Replies.BDAT_NULL, "250 2.0.0 OK"]
    assert psc.delivery.box(APP) == []


async def test_bdat_before_starttls_or_auth_is_refused_and_its_chunk_dropped(psc: Env, material: Material) -> None:
    def run() -> tuple[list[str], list[str]]:
        raw = socket.create_connection(("127.0.0.1", psc.port), timeout=10)
        plain = Wire(raw)
        plain.reply()
        plain.send(b"EHLO lps.test\r\nBDAT 6 LAST\r\nQUIT\r\nNOOP\r\n")
        plain.reply()
        clear = plain.replies(2)
        plain.send(b"STARTTLS\r\n")
        assert plain.reply()[0].startswith("220")
        tls = material.client_context().wrap_socket(raw, server_hostname=f"smtp.psc.{DOMAIN}")
        with tls:
            wire = Wire(tls)
            wire.send(b"EHLO lps.test\r\n")
            wire.reply()
            wire.send(b"BDAT 6 LAST\r\nQUIT\r\nNOOP\r\n")
            return clear, wire.replies(2)

    clear, secure = await in_thread(run)
    assert clear == [Replies.STARTTLS_FIRST, "250 2.0.0 OK"]  # RFC 3207 §4; "QUIT\r\n" was the chunk
    assert secure == [Replies.AUTH_FIRST, "250 2.0.0 OK"]  # RFC 4954 §6


async def test_oversize_is_refused_after_reading_and_pipelined_chunks_are_dropped(material: Material) -> None:
    env = await start_env(material, "psc", max_size=1000)
    try:
        big = b"x" * 600 + b"\r\n"
        data = (_envelope() + _bdat(big) + _bdat(big) + _bdat(b"NOOP\r\n") + _bdat(b"", last=True) + b"NOOP\r\n"
                + _envelope() + _bdat(b"y" * 5000 + b"\r\n", last=True) + b"RSET\r\n"
                + _envelope() + _bdat(big, last=True))
        got = await in_thread(_run, env, material, data, 14)
        assert got[2:7] == ["250 2.0.0 Ok: 602 bytes", Replies.TOO_BIG, Replies.BDAT_AFTER_FAILURE,
                            Replies.BDAT_AFTER_FAILURE, "250 2.0.0 OK"]
        assert got[7:11] == ["250 2.1.0 Sender OK", "250 2.1.5 Recipient OK", Replies.TOO_BIG, "250 2.0.0 OK"]
        assert QUEUED.match(got[13])  # the session stayed in step: the next message goes
        (stored,) = await env.delivery.wait_for(APP)
        assert _strip_received(stored) == big
    finally:
        await env.front.aclose()


async def test_long_lines_are_refused_as_in_data(psc: Env, material: Material) -> None:
    """The 1000-octet line limit (RFC 5321 §4.5.3.1.6) holds across chunk boundaries."""
    line = b"z" * 999 + b"\r\n"  # 1001 octets with CRLF
    data = _envelope() + _bdat(line[:500]) + _bdat(line[500:], last=True) + b"RSET\r\n"
    got = await in_thread(_run, psc, material, data, 5)
    assert got[2] == "250 2.0.0 Ok: 500 bytes" and got[3].startswith("500 5.5.2 Line too long")
    limits = BodyLimits(SubmissionOptions())
    for piece in (b"a" * 997 + b"\r", b"\n", b"b" * 998, b"\r\n"):
        limits.feed(piece)
    assert limits.problem is None  # 998 octets + CRLF, split anywhere, is within the limit


async def test_data_rcpt_and_mail_after_bdat_are_out_of_sequence(psc: Env, material: Material) -> None:
    data = (_envelope() + _bdat(b"Subject: x\r\n") + b"DATA\r\n" + _bdat(b"more\r\n", last=True) + b"RSET\r\n"
            + _envelope() + _bdat(b"Subject: y\r\n") + f"RCPT TO:<{PER}>\r\nMAIL FROM:<{PER}>\r\nRSET\r\n".encode()
            + _envelope() + b"DATA\r\n")
    got = await in_thread(_run, psc, material, data, 15)
    assert got[2:6] == ["250 2.0.0 Ok: 12 bytes", Replies.DATA_AFTER_BDAT, Replies.BDAT_AFTER_FAILURE,
                        "250 2.0.0 OK"]  # RFC 3030 §3: 503, then RSET clears the transaction
    assert got[8:11] == ["250 2.0.0 Ok: 12 bytes", Replies.RCPT_AFTER_BDAT, Replies.MAIL_AFTER_BDAT]
    assert got[11:] == ["250 2.0.0 OK", "250 2.1.0 Sender OK", "250 2.1.5 Recipient OK",
                        "354 End data with <CR><LF>.<CR><LF>"]  # DATA and BDAT may share a session
    assert psc.delivery.box(APP) == []


async def test_malformed_bdat_closes_the_connection(psc: Env, material: Material) -> None:
    """The chunk's end is unknown: 521 and the connection closed (Postfix does the same)."""
    assert parse_bdat("12 LAST") is not None and parse_bdat("12 last") is not None
    assert all(parse_bdat(a) is None for a in (None, "", "x", "-1", "12 FIRST", "12 LAST x", "1" * 21, "²"))

    def run() -> tuple[list[str], bytes]:
        with _wire(psc, material) as wire:
            wire.send(_envelope() + b"BDAT twelve LAST\r\nQUIT\r\n")
            return wire.replies(3), wire.file.read()

    replies, rest = await in_thread(run)
    assert replies[2] == Replies.BDAT_SYNTAX and rest == b""


async def test_connection_dropped_mid_chunk_delivers_nothing_and_is_journaled(psc: Env, material: Material) -> None:
    def run() -> list[str]:
        with _wire(psc, material) as wire:
            wire.send(_envelope() + _bdat(kept, last=True) + _envelope() + b"BDAT 1000 LAST\r\n" + b"a" * 100)
            got = wire.replies(5)
            wire.sock.shutdown(socket.SHUT_RDWR)
            return got

    kept = message(PER, APP, subject="avant la coupure")
    got = await in_thread(run)
    assert QUEUED.match(got[2]) and got[3:] == ["250 2.1.0 Sender OK", "250 2.1.5 Recipient OK"]
    record = await psc.journal.wait_for(lambda: next((r for r in psc.records() if r.ended_at), None))
    bdat = record.commands[-1]
    assert bdat.command == "BDAT 1000 LAST" and bdat.at <= (record.ended_at or 0)
    assert bdat.result == ("connection lost mid-chunk after 100 of 1000 octets: transaction discarded, "
                           "nothing delivered (RFC 3030 section 2)")
    assert len(record.messages) == 1  # the message before: delivered, and it stays
    assert [_strip_received(m) for m in psc.delivery.box(APP)] == [kept]


async def _client(env: Env, material: Material, stack: contextlib.AsyncExitStack
                  ) -> tuple[SMTPSubmission, list[bytes]]:
    smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=env.port, start_tls=False, timeout=10)
    await smtp.connect()
    stack.callback(smtp.close)
    await starttls(smtp, tls_context=material.client_context(), server_hostname=f"smtp.psc.{DOMAIN}")
    await authenticate(smtp, XOAuth2Client(PER, Secret(material.token())))
    return SMTPSubmission(smtp, server_name=f"smtp.psc.{DOMAIN}"), record_writes(smtp.protocol)


async def test_our_client_sends_each_message_in_one_write_with_bdat(psc: Env, material: Material) -> None:
    one = message(PER, APP, subject="client 1", body=".point\r\nfin\r\n")
    two = message(PER, APP, subject="client 2")
    async with contextlib.AsyncExitStack() as stack:
        sub, writes = await _client(psc, material, stack)
        first = await sub.send(PER, (APP,), one)
        second = await sub.send(PER, (APP, UNKNOWN), two)
    assert first.accepted == (APP,) and QUEUED.match(first.reply)
    assert second.accepted == (APP,) and second.refused == ((UNKNOWN, Replies.UNKNOWN_USER),)
    assert len(writes) == 2  # one round trip per message (RFC 2920 + RFC 3030)
    assert writes[0].endswith(b"BDAT %d LAST\r\n" % len(one) + one) and writes[0].startswith(b"MAIL FROM:")
    stored = await psc.delivery.wait_for(APP, 2)
    assert [_strip_received(s) for s in stored] == [one, two]
    (record,) = [r for r in psc.records() if r.messages]
    assert [m["via"] for m in record.messages] == ["BDAT", "BDAT"]


async def test_chunking_off_keeps_the_data_path(material: Material) -> None:
    env = await start_env(material, "psc", options=SubmissionOptions(chunking=False))
    try:
        assert "250-CHUNKING" not in await in_thread(_ehlo, env, material)
        got = await in_thread(_run, env, material, _envelope() + b"BDAT 6 LAST\r\nQUIT\r\nNOOP\r\n", 4)
        assert got[2:] == [Replies.BDAT_OFF, "250 2.0.0 OK"]  # refused, its chunk read all the same
        data = message(PER, APP, subject="par DATA")
        async with contextlib.AsyncExitStack() as stack:
            sub, writes = await _client(env, material, stack)
            await sub.send(PER, (APP,), data)
        assert writes[0].endswith(b"\r\nDATA\r\n") and writes[1].endswith(b"\r\n.\r\n")
        (stored,) = await env.delivery.wait_for(APP)
        assert _strip_received(stored) == data
        assert [m["via"] for r in env.records() for m in r.messages] == ["DATA"]
    finally:
        await env.front.aclose()


def test_the_chunking_setting_of_the_config(tmp_path: Path) -> None:
    path = tmp_path / "sandbox.toml"
    assert load_config(None).submission.chunking is True and SubmissionOptions().chunking is True
    path.write_text("[submission]\nchunking = false\n")
    assert load_config(path).submission.chunking is False
    path.write_text('[submission]\nchunking = "no"\n')
    with pytest.raises(ConfigError, match="chunking"):
        load_config(path)


async def test_any_chunking_of_a_message_delivers_the_same_octets(psc: Env, material: Material) -> None:
    """Hypothesis: random octets (CR, LF, dots, 8-bit) cut at random places, sent as BDAT chunks on
    one session, arrive exactly as sent."""
    octets = st.binary(max_size=300) | st.lists(st.sampled_from([b"\r\n", b".", b"\r", b"\n", b"a", b"\xe9", b"\x00"]),
                                                 max_size=60).map(b"".join)

    def run() -> int:
        sent = 0
        with _wire(psc, material) as wire:

            @settings(max_examples=examples(40), deadline=None, suppress_health_check=list(HealthCheck))
            @given(body=octets, cuts=st.lists(st.integers(min_value=0, max_value=300), max_size=6),
                   empty_last=st.booleans())
            def prop(body: bytes, cuts: list[int], empty_last: bool) -> None:
                nonlocal sent
                data = b"Subject: h\r\n\r\n" + body
                edges = sorted({min(c, len(data)) for c in cuts} | {0, len(data)})
                chunks = [data[a:b] for a, b in itertools.pairwise(edges)] or [b""]
                if empty_last:
                    chunks.append(b"")
                payload = _envelope() + b"".join(_bdat(c, last=i == len(chunks) - 1) for i, c in enumerate(chunks))
                wire.send(payload)
                got = wire.replies(2 + len(chunks))
                assert QUEUED.match(got[-1]), got
                sent += 1
                box = psc.delivery.box(APP)
                assert len(box) == sent and _strip_received(box[-1]) == data

            prop()
        return sent

    assert await in_thread(run) >= 1


async def _send_through_sandbox(sandbox: Sandbox, data: bytes) -> list[bytes]:
    """Our client through the running sandbox's PSC front: PER to itself; the writes it made."""
    info = sandbox.info
    token = str(sandbox.psc.issue_tokens_for_tests("899700000001", "mssante-sandbox")["access_token"])
    smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=info["smtp"]["psc"]["port"], start_tls=False, timeout=10)
    await smtp.connect()
    try:
        await starttls(smtp, tls_context=ssl.create_default_context(cafile=info["ca_bundle"]),
                       server_hostname=info["smtp"]["psc"]["host"])
        await authenticate(smtp, XOAuth2Client(PER, Secret(token)))
        writes = record_writes(smtp.protocol)
        await SMTPSubmission(smtp, server_name=info["smtp"]["psc"]["host"]).send(PER, (PER,), data)
    finally:
        smtp.close()
    return writes


def _imap_fetch_last(sandbox: Sandbox) -> bytes:
    """The newest INBOX message of PER read with imaplib (a client we did not write)."""
    info = sandbox.info
    token = sandbox.psc.issue_tokens_for_tests("899700000001", "mssante-sandbox")["access_token"]
    ctx = ssl.create_default_context(cafile=info["ca_bundle"])
    ctx.check_hostname = False  # connected by IP
    imap = imaplib.IMAP4("127.0.0.1", info["imap"]["psc"]["port"], timeout=20)
    try:
        imap.starttls(ssl_context=ctx)
        imap.authenticate("XOAUTH2", lambda _: f"user={PER}\x01auth=Bearer {token}\x01\x01".encode())
        imap.select("INBOX")
        _, data = imap.uid("FETCH", "*", "(BODY.PEEK[])")
        item = data[0]
        assert isinstance(item, tuple)
        return bytes(item[1])
    finally:
        imap.logout()


@pytest.mark.slow
@pytest.mark.parametrize("chunking", [True, False])
async def test_the_running_sandbox_follows_the_chunking_setting(tmp_path: Path, chunking: bool) -> None:
    """The ``[submission] chunking`` setting reaches the fronts (runner wiring); BDAT or DATA, the
    message lands in the store octet for octet (read back with imaplib)."""
    config = replace(default_config(), submission=SubmissionSettings(chunking=chunking))
    data = message(PER, PER, subject=f"chunking={chunking}", body=".point\r\n\u00e9t\u00e9\r\nfin\r\n")
    async with running_sandbox(tmp_path / "state", config) as sandbox:
        writes = await _send_through_sandbox(sandbox, data)
        stored = await in_thread(_imap_fetch_last, sandbox)
        (record,) = [r for r in sandbox.journal if r.front == "smtp-psc" and r.messages]
    assert _strip_received(stored) == data
    if chunking:
        assert len(writes) == 1 and writes[0].endswith(b"BDAT %d LAST\r\n" % len(data) + data)
    else:
        assert len(writes) == 2 and writes[0].endswith(b"\r\nDATA\r\n")
    assert [m["via"] for m in record.messages] == ["BDAT" if chunking else "DATA"]


@settings(max_examples=examples(300), deadline=None)
@given(data=st.lists(st.sampled_from([b"\r\n", b"\r", b"\n", b"a" * 7, b"b" * 40, b"."]), max_size=80).map(b"".join),
       cuts=st.lists(st.integers(min_value=0, max_value=600), max_size=8))
def test_body_limits_do_not_depend_on_where_the_chunks_are_cut(data: bytes, cuts: list[int]) -> None:
    """Same verdict whole or in pieces, and the verdict of the definition (RFC 5321 §4.5.3.1.6:
    a line, CRLF included, of at most ``max_line_length`` octets; RFC 1870: ``max_size`` in all)."""
    options = SubmissionOptions(max_line_length=80, max_size=400)
    lines = data.split(b"\r\n")
    expect_long = any(len(line) + 2 > 80 for line in lines[:-1]) or len(lines[-1]) > 80
    whole, pieces = BodyLimits(options), BodyLimits(options)
    whole.feed(data)
    edges = sorted({min(c, len(data)) for c in cuts} | {0, len(data)})
    for a, b in itertools.pairwise(edges):
        pieces.feed(data[a:b])
    assert (whole.too_long, whole.too_big, whole.size) == (pieces.too_long, pieces.too_big, pieces.size)
    assert whole.too_long == expect_long and whole.too_big == (len(data) > 400)
