"""CHUNKING (RFC 3030) with PIPELINING (RFC 2920): the whole message in the envelope's write.

Against aiosmtpd over STARTTLS (the server of ``test_smtp_auth``) taught ``BDAT`` here: it
reads a chunk's octets whatever its answer (RFC 3030 §3), answers ``BDAT`` 503 without a
sender and 554 without a recipient, and hands a ``LAST`` chunk to the handler as DATA would.
The transcripts are the client's writes and what the server received.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
from typing import Any

import aiosmtplib
import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from mssante.client import SMTPSubmission
from mssante.client._smtp import StaleSession
from mssante.client._smtp_auth import authenticate, starttls
from mssante.errors import CommandFailed, ConnectionClosed, LimitError
from mssante.secret import Secret
from mssante.wire.sasl import XOAuth2Client

from .test_smtp_auth import BAL, GOOD, DovecotLikeSMTP, client_ctx, pki, server_ctx, smtp_server
from .test_smtp_pipelining import MESSAGE, REFUSED, PipeliningHandler, _submission, record_writes

__all__ = ["client_ctx", "pki", "server_ctx"]  # fixtures, imported for pytest


class ChunkingHandler(PipeliningHandler):
    """PIPELINING and CHUNKING; refuses REFUSED (and the sender when asked); a DATA reply can be forced."""

    def __init__(self, *, chunking: bool = True) -> None:
        super().__init__()
        self.chunking = chunking
        self.data_reply: str | None = None
        self.close_at_mail = False
        self.close_at_rcpt = False
        self.commands: list[str] = []  # what the server received, in order (BDAT with its size)

    async def handle_EHLO(self, server: SMTP, session: Session, envelope: Envelope, hostname: str,
                          responses: list[str]) -> list[str]:
        responses = await super().handle_EHLO(server, session, envelope, hostname, responses)
        if self.chunking:
            responses.insert(1, "250-CHUNKING")
        return responses

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          options: list[str]) -> str:
        self.commands.append("MAIL")
        if self.close_at_mail:
            return "421 4.3.2 shutting down"
        return await super().handle_MAIL(server, session, envelope, address, options)

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          options: list[str]) -> str:
        self.commands.append(f"RCPT {address}")
        if self.close_at_mail:
            await asyncio.Event().wait()  # after its 421 the server says nothing more
        if self.close_at_rcpt:
            return "421 4.3.2 shutting down"
        return await super().handle_RCPT(server, session, envelope, address, options)

    async def handle_RSET(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.commands.append("RSET")
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.data_reply is not None:
            return self.data_reply
        return await super().handle_DATA(server, session, envelope)


class ChunkingSMTP(DovecotLikeSMTP):
    """aiosmtpd with ``BDAT <size> [LAST]`` (RFC 3030 §2-3)."""

    async def smtp_BDAT(self, arg: str) -> None:
        handler: Any = self.event_handler
        size, _, last = arg.partition(" ")
        handler.commands.append(f"BDAT {arg}")
        if handler.close_at_rcpt:
            await asyncio.Event().wait()  # after its 421 the server says nothing more
        chunk = await self._reader.readexactly(int(size))  # read whatever the answer (RFC 3030 §3)
        assert self.envelope is not None
        if self.envelope.mail_from is None:
            await self.push("503 5.5.1 MAIL first")
            return
        if not self.envelope.rcpt_tos:
            await self.push("554 5.5.1 no valid recipients")
            return
        self.envelope.original_content = (self.envelope.original_content or b"") + chunk
        if last != "LAST":
            await self.push("250 2.0.0 chunk accepted")
            return
        self.envelope.content = self.envelope.original_content
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()
        await self.push(status)


async def _session(stack: contextlib.AsyncExitStack, server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext,
                   handler: ChunkingHandler) -> tuple[SMTPSubmission, list[bytes]]:
    port = await stack.enter_async_context(smtp_server(server_ctx, handler, server_class=ChunkingSMTP))
    return await _submission(port, client_ctx, stack)


async def test_envelope_and_message_in_one_write_and_each_reply_checked(server_ctx: ssl.SSLContext,
                                                                       client_ctx: ssl.SSLContext) -> None:
    handler = ChunkingHandler()
    async with contextlib.AsyncExitStack() as stack:
        sub, writes = await _session(stack, server_ctx, client_ctx, handler)
        result = await sub.send(BAL, ("a@mss.test", REFUSED, "b@mss.test"), MESSAGE)
        assert result.accepted == ("a@mss.test", "b@mss.test")
        assert result.refused == ((REFUSED, "550 5.1.1 no such user"),)  # the middle reply, on its recipient
        assert result.reply.startswith("250 2.0.0 queued")
        # One write, one round trip: MAIL, three RCPT, BDAT and the message as it is (no dot-stuffing).
        assert len(writes) == 1
        head, _, body = writes[0].partition(b"BDAT ")
        assert [line.split(b":")[0] for line in head.split(b"\r\n")[:-1]] == [b"MAIL FROM", b"RCPT TO",
                                                                             b"RCPT TO", b"RCPT TO"]
        assert body == b"%d LAST\r\n" % len(MESSAGE) + MESSAGE
        assert handler.commands == ["MAIL", "RCPT a@mss.test", f"RCPT {REFUSED}", "RCPT b@mss.test",
                                    f"BDAT {len(MESSAGE)} LAST"]
        assert handler.delivered == [(BAL, ["a@mss.test", "b@mss.test"], MESSAGE)]


async def test_refusals_in_the_middle_of_a_run_land_on_their_own_message(server_ctx: ssl.SSLContext,
                                                                        client_ctx: ssl.SSLContext) -> None:
    """Every recipient refused, sender refused, data refused, too large: each send gets its own
    error, the transaction is reset after a refused BDAT (RFC 3030 §3), and the next one goes."""
    handler = ChunkingHandler()
    async with contextlib.AsyncExitStack() as stack:
        sub, writes = await _session(stack, server_ctx, client_ctx, handler)
        await sub.send(BAL, ("a@mss.test",), b"Subject: 1\r\n\r\none\r\n")
        m2, m3, m4 = (b"Subject: %d\r\n\r\n%s\r\n" % (n, w) for n, w in ((2, b"two"), (3, b"three"), (4, b"four")))

        handler.commands.clear()
        with pytest.raises(CommandFailed, match=re.escape(f"every recipient was refused: {REFUSED}: 550")) as info:
            await sub.send(BAL, (REFUSED,), m2)
        assert info.value.smtp_code is None
        assert handler.commands == ["MAIL", f"RCPT {REFUSED}", f"BDAT {len(m2)} LAST", "RSET"]

        handler.refuse_sender = True
        handler.commands.clear()
        with pytest.raises(CommandFailed, match="553") as info:
            await sub.send(BAL, ("a@mss.test",), m3)
        assert info.value.smtp_code == 553
        # aiosmtpd answers RCPT 503 itself without a sender (no handler call), then BDAT 503.
        assert handler.commands == ["MAIL", f"BDAT {len(m3)} LAST", "RSET"]
        handler.refuse_sender = False

        handler.data_reply = "554 5.7.1 content refused"
        handler.commands.clear()
        with pytest.raises(CommandFailed, match=re.escape("BDAT refused: 5.7.1 content refused")) as info:
            await sub.send(BAL, ("b@mss.test",), m4)
        assert info.value.smtp_code == 554 and info.value.enhanced_code == "5.7.1"
        assert handler.commands == ["MAIL", "RCPT b@mss.test", f"BDAT {len(m4)} LAST", "RSET"]

        handler.data_reply = "552 5.3.4 message too big for system"
        with pytest.raises(LimitError):
            await sub.send(BAL, ("b@mss.test",), b"Subject: 5\r\n\r\nfive\r\n")
        handler.data_reply = None

        assert sub.usable
        last = await sub.send(BAL, ("b@mss.test",), b"Subject: 6\r\n\r\nsix\r\n")
        assert last.accepted == ("b@mss.test",)
        assert [(rcpts, data.split(b"\r\n")[0]) for _, rcpts, data in handler.delivered] == [
            (["a@mss.test"], b"Subject: 1"), (["b@mss.test"], b"Subject: 6")]
        assert not any(b"\r\n.\r\n" in w for w in writes)  # never a DATA terminator on this server


async def test_a_session_closed_at_mail_is_stale_and_nothing_was_submitted(server_ctx: ssl.SSLContext,
                                                                          client_ctx: ssl.SSLContext) -> None:
    """The group's replies are awaited together, but a 421 ends the wait: no other reply will come
    (here the server goes silent after it), and the command timeout (5 s) is not what ends it."""
    handler = ChunkingHandler()
    handler.close_at_mail = True
    async with contextlib.AsyncExitStack() as stack:
        sub, _ = await _session(stack, server_ctx, client_ctx, handler)
        with pytest.raises(StaleSession, match="421"):
            async with asyncio.timeout(4):
                await sub.send(BAL, ("a@mss.test", "b@mss.test"), MESSAGE)
        assert handler.delivered == []


async def test_without_chunking_data_is_pipelined_and_dot_stuffed(server_ctx: ssl.SSLContext,
                                                                 client_ctx: ssl.SSLContext) -> None:
    handler = ChunkingHandler(chunking=False)
    async with contextlib.AsyncExitStack() as stack:
        sub, writes = await _session(stack, server_ctx, client_ctx, handler)
        await sub.send(BAL, ("a@mss.test",), MESSAGE)
        assert len(writes) == 2 and writes[0].endswith(b"\r\nDATA\r\n")
        assert b"\r\n..starts with a dot\r\n...two dots\r\n" in writes[1] and writes[1].endswith(b"\r\n.\r\n")
        assert not any(c.startswith("BDAT") for c in handler.commands)
        assert handler.delivered == [(BAL, ["a@mss.test"], MESSAGE)]


async def test_a_421_in_the_middle_of_the_group_ends_the_session(server_ctx: ssl.SSLContext,
                                                                 client_ctx: ssl.SSLContext) -> None:
    """A 421 to RCPT and then silence: the connection is reported closed at once (RFC 5321 §3.8)."""
    handler = ChunkingHandler()
    handler.close_at_rcpt = True
    async with contextlib.AsyncExitStack() as stack:
        sub, _ = await _session(stack, server_ctx, client_ctx, handler)
        with pytest.raises(ConnectionClosed) as info:
            async with asyncio.timeout(4):
                await sub.send(BAL, ("a@mss.test", "b@mss.test"), MESSAGE)
        assert info.value.smtp_code == 421 and not isinstance(info.value, StaleSession)
        assert not sub.usable and handler.delivered == []


async def test_nothing_is_pipelined_with_starttls_or_before_auth(server_ctx: ssl.SSLContext,
                                                                 client_ctx: ssl.SSLContext) -> None:
    """The whole client transcript: STARTTLS alone in its write and waited for (RFC 3207 §4.2,
    RFC 2920 does not pipeline it), EHLO again, AUTH alone (RFC 4954), and only then the group."""
    handler = ChunkingHandler()
    async with smtp_server(server_ctx, handler, server_class=ChunkingSMTP) as port:
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False, timeout=5)
        await smtp.connect()
        try:
            writes = record_writes(smtp.protocol)
            await starttls(smtp, tls_context=client_ctx, server_hostname="smtp.psc.mss.test")
            await authenticate(smtp, XOAuth2Client(BAL, Secret(GOOD)))
            await SMTPSubmission(smtp, server_name="smtp.psc.mss.test").send(BAL, ("a@mss.test",), MESSAGE)
        finally:
            smtp.close()
    verbs = [w.split(b" ")[0].split(b"\r\n")[0] for w in writes]
    assert verbs == [b"EHLO", b"STARTTLS", b"EHLO", b"AUTH", b"MAIL"]
    assert writes[1] == b"STARTTLS\r\n" and writes[3].count(b"\r\n") == 1  # alone in their writes
    assert handler.delivered == [(BAL, ["a@mss.test"], MESSAGE)]
