"""PIPELINING (RFC 2920): MAIL, every RCPT and DATA in one write when offered, every reply checked.

Against aiosmtpd over STARTTLS (the server of ``test_smtp_auth``), which reads pipelined commands
and here advertises PIPELINING; refusals come from its handler.
"""

from __future__ import annotations

import ssl
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from mssante.client import SMTPSubmission
from mssante.client._smtp_auth import authenticate
from mssante.errors import CommandFailed
from mssante.secret import Secret
from mssante.wire.sasl import XOAuth2Client

from .test_smtp_auth import BAL, GOOD, BearerHandler, client_ctx, pki, server_ctx, smtp_server, tls_session

__all__ = ["client_ctx", "pki", "server_ctx"]  # fixtures, imported for pytest

REFUSED = "nobody@mss.test"
MESSAGE = b"Subject: pipelined\r\n\r\nline one\r\n.starts with a dot\r\n..two dots\r\nlast\r\n"


class PipeliningHandler(BearerHandler):
    """Advertises PIPELINING, refuses one recipient (or the sender), keeps what it delivers."""

    def __init__(self, *, pipelining: bool = True) -> None:
        super().__init__()
        self.pipelining = pipelining
        self.refuse_sender = False
        self.delivered: list[tuple[str, list[str], bytes]] = []

    async def handle_EHLO(self, server: SMTP, session: Session, envelope: Envelope, hostname: str,
                          responses: list[str]) -> list[str]:
        session.host_name = hostname
        if self.pipelining:
            responses.insert(1, "250-PIPELINING")
        return responses

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          options: list[str]) -> str:
        if self.refuse_sender:
            return "553 5.7.1 sender not allowed"
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          options: list[str]) -> str:
        if address == REFUSED:
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.delivered.append((str(envelope.mail_from), list(envelope.rcpt_tos), bytes(envelope.original_content)))
        return "250 2.0.0 queued"


async def _submission(port: int, ctx: ssl.SSLContext, stack: Any) -> tuple[SMTPSubmission, list[bytes]]:
    smtp = await stack.enter_async_context(tls_session(port, ctx))
    await authenticate(smtp, XOAuth2Client(BAL, Secret(GOOD)))
    return SMTPSubmission(smtp, server_name="smtp.psc.mss.test"), record_writes(smtp.protocol)


def record_writes(protocol: Any) -> list[bytes]:
    """Every write the client makes on this connection from now on (the wire transcript), in order."""
    writes: list[bytes] = []
    original = protocol.write

    def record(data: bytes) -> None:
        writes.append(data)
        original(data)

    protocol.write = record
    return writes


async def test_one_write_for_the_envelope_and_each_reply_checked(server_ctx: ssl.SSLContext,
                                                                 client_ctx: ssl.SSLContext) -> None:
    import contextlib

    handler = PipeliningHandler()
    async with contextlib.AsyncExitStack() as stack:
        port = await stack.enter_async_context(smtp_server(server_ctx, handler))
        sub, writes = await _submission(port, client_ctx, stack)
        result = await sub.send(BAL, ("a@mss.test", REFUSED, "b@mss.test"), MESSAGE)
        assert result.accepted == ("a@mss.test", "b@mss.test")
        assert result.refused == ((REFUSED, "550 5.1.1 no such user"),)
        assert result.reply.startswith("250 2.0.0 queued")
        group = writes[0].split(b"\r\n")
        assert [line.split(b":")[0] for line in group[:-1]] == [b"MAIL FROM", b"RCPT TO", b"RCPT TO", b"RCPT TO",
                                                                b"DATA"]
        assert len(writes) == 2  # the command group, then the message: one round trip saved per command
        assert handler.delivered == [(BAL, ["a@mss.test", "b@mss.test"], MESSAGE)]  # dot-stuffing undone intact

        # Every recipient refused: DATA is refused (503) and nothing is sent; the session stays usable.
        with pytest.raises(CommandFailed, match="every recipient was refused"):
            await sub.send(BAL, (REFUSED,), MESSAGE)
        handler.refuse_sender = True
        with pytest.raises(CommandFailed, match="553") as info:
            await sub.send(BAL, ("a@mss.test",), MESSAGE)
        assert info.value.smtp_code == 553
        handler.refuse_sender = False
        assert sub.usable
        await sub.send(BAL, ("b@mss.test",), MESSAGE)
        assert len(handler.delivered) == 2


async def test_without_pipelining_one_command_at_a_time(server_ctx: ssl.SSLContext,
                                                        client_ctx: ssl.SSLContext) -> None:
    import contextlib

    handler = PipeliningHandler(pipelining=False)
    async with contextlib.AsyncExitStack() as stack:
        port = await stack.enter_async_context(smtp_server(server_ctx, handler))
        sub, writes = await _submission(port, client_ctx, stack)
        result = await sub.send(BAL, ("a@mss.test", REFUSED), MESSAGE)
        assert result.accepted == ("a@mss.test",)
        assert [w.split(b" ")[0].split(b":")[0] for w in writes[:4]] == [b"MAIL", b"RCPT", b"RCPT", b"DATA\r\n"]
        assert handler.delivered == [(BAL, ["a@mss.test"], MESSAGE)]


# A space or a non-ASCII address (no SMTPUTF8 here) cannot go on the command line either: a
# UsageError, not aiosmtplib's ValueError or a UnicodeEncodeError.
@pytest.mark.parametrize("address", ["a@mss.test\x00", "a\x7f@mss.test", "a b@mss.test", "é@mss.test"])
async def test_no_control_character_goes_into_a_pipelined_command(server_ctx: ssl.SSLContext,
                                                                  client_ctx: ssl.SSLContext, address: str) -> None:
    import contextlib

    from mssante.errors import UsageError

    handler = PipeliningHandler()
    async with contextlib.AsyncExitStack() as stack:
        port = await stack.enter_async_context(smtp_server(server_ctx, handler))
        sub, writes = await _submission(port, client_ctx, stack)
        with pytest.raises(UsageError):
            await sub.send(BAL, (address,), MESSAGE)
        assert writes == [] and handler.delivered == []


async def test_data_accepted_with_no_recipient_gets_a_lone_dot(server_ctx: ssl.SSLContext,
                                                               client_ctx: ssl.SSLContext,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """RFC 2920 §3.1: a server may answer 354 to a pipelined DATA although every RCPT failed."""
    import contextlib

    from .test_smtp_auth import DovecotLikeSMTP

    async def lenient_data(self: SMTP, arg: str) -> None:
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            self.envelope.rcpt_tos.append("<none>")  # answer 354 all the same, then refuse the content
        await SMTP.smtp_DATA(self, arg)

    monkeypatch.setattr(DovecotLikeSMTP, "smtp_DATA", lenient_data, raising=False)
    handler = PipeliningHandler()

    async def refuse_empty(server: SMTP, session: Session, envelope: Envelope) -> str:
        handler.delivered.append((str(envelope.mail_from), list(envelope.rcpt_tos), bytes(envelope.original_content)))
        return "554 5.5.1 no valid recipients"

    handler.handle_DATA = refuse_empty  # type: ignore[method-assign]
    async with contextlib.AsyncExitStack() as stack:
        port = await stack.enter_async_context(smtp_server(server_ctx, handler))
        sub, writes = await _submission(port, client_ctx, stack)
        with pytest.raises(CommandFailed, match="every recipient was refused"):
            await sub.send(BAL, (REFUSED,), MESSAGE)
        assert writes[1] == b".\r\n"  # the message itself was never sent
        assert handler.delivered == [(BAL, ["<none>"], b"")]
        assert sub.usable
