"""SMTP submission (RFC 6409) on aiosmtplib: STARTTLS + re-EHLO, SASL, SIZE, DSN, PIPELINING, error mapping.

The SASL step and STARTTLS are :mod:`mssante.client._smtp_auth` (AUTH line ≤ 512 octets,
RFC 4954 §4); this module adds the certificate revocation check after the handshake
(ECO.1.1.6), the ``SIZE`` check before ``DATA`` (RFC 1870 §6), the RFC 3461 DSN parameters
from the composed message (dropped, as RFC 3461 §4 requires, when DSN is not advertised),
and maps every failure to our error tree.

When the server offers PIPELINING (RFC 2920), ``MAIL``, every ``RCPT`` and ``DATA`` go in one
write and their replies are read together (:class:`_ReplyTap`): one round trip instead of
two plus one per recipient. Every reply is still checked (RFC 2920 §3.1). When it also offers
CHUNKING (RFC 3030), ``BDAT <size> LAST`` and the message join that write: one round trip per
message. Each group holds one transaction: the end of a message and the next ``MAIL``/``RCPT``
in one group (RFC 2920 §3.1 allows it) make Dovecot 2.3.19's submission panic.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import re
import ssl
from collections import deque
from dataclasses import dataclass
from typing import Any, Final

import aiosmtplib
from aiosmtplib.email import quote_address
from aiosmtplib.protocol import PERIOD_REGEX, normalize_message_line_endings
from aiosmtplib.response import SMTPResponse
from aiosmtplib.typing import SMTPStatus

from mssante.errors import (
    CommandFailed,
    ConnectionClosed,
    LimitError,
    MssanteError,
    PeerLimitError,
    ProtocolError,
    RemoteProtocolError,
    TimeoutError,
    TransportError,
    UsageError,
)
from mssante.message import DSNParameters
from mssante.trust import map_ssl_error
from mssante.wire.sasl import ClientMechanism

from ._config import ConnectionSettings
from ._smtp_auth import _enhanced_code, authenticate, starttls
from ._tls import TLSClient, map_connect_error

__all__ = ["SMTPSubmission", "StaleSession", "SubmissionResult", "smtp_error"]

# The bounds aiosmtplib puts on a reply (RFC 5321 §4.5.3.1.5 allows 512 octets a line).
_MAX_REPLY_LINE: Final = 8192
_MAX_REPLY: Final = 4 * _MAX_REPLY_LINE
_CONTROL: Final = re.compile(rb"[\x00-\x1f\x7f]")  # no CR/LF smuggled into a command line (RFC 5321 §2.3.8)


class StaleSession(ConnectionClosed):
    """The server had closed the session before ``MAIL FROM`` was answered: nothing was submitted,
    so the message can be sent again on a new session."""


@dataclass(frozen=True, kw_only=True)
class SubmissionResult:
    """What the submission server said about one message.

    Attributes:
        accepted: recipients accepted at ``RCPT TO``.
        refused: ``(recipient, reply)`` for each refused one.
        reply: the final reply to ``DATA`` (``250 2.0.0 Ok: queued as ...``).
        dsn_requested: DSN parameters were sent (the server advertised DSN).
    """

    accepted: tuple[str, ...]
    refused: tuple[tuple[str, str], ...]
    reply: str
    dsn_requested: bool


def smtp_error(exc: BaseException, during: str) -> MssanteError:
    """Map an aiosmtplib exception to our error tree.

    Returns:
        ``552`` → :class:`LimitError`; ``421`` or a lost connection → :class:`ConnectionClosed`;
        a timeout → :class:`TimeoutError`; a reply longer than aiosmtplib accepts (8 KiB a
        line, 32 KiB a reply) → :class:`PeerLimitError`; a reply that is no SMTP reply →
        :class:`RemoteProtocolError`; another reply → :class:`CommandFailed` (with
        ``smtp_code`` and ``enhanced_code``).

    Raises:
        Nothing: the error is returned.
    """
    if isinstance(exc, MssanteError):
        return exc
    if isinstance(exc, aiosmtplib.SMTPTimeoutError | builtins.TimeoutError):
        return TimeoutError(f"SMTP timeout during {during}")
    if isinstance(exc, aiosmtplib.SMTPServerDisconnected):
        return ConnectionClosed(f"SMTP connection lost during {during}: {exc}")
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        text = exc.message.strip()[:200]
        enhanced = _enhanced_code(exc.message)
        if exc.code == SMTPStatus.invalid_response:
            # aiosmtplib bounds what it buffers (MAX_LINE_LENGTH, MAX_RESPONSE_LENGTH) and says so
            # with this pseudo-code; the reply is the server's fault (RFC 5321 §4.5.3.1.5).
            if "too long" in exc.message:
                return PeerLimitError(f"the SMTP server sent a reply too long during {during}",
                                      requirement="RFC 5321 §4.5.3.1.5")
            return RemoteProtocolError(f"the SMTP server sent no valid reply during {during}: {text[:80]}",
                                       requirement="RFC 5321 §4.2")
        if exc.code == 421:
            return ConnectionClosed(f"the server closed the session during {during}: {text}", smtp_code=421)
        if exc.code == 552:
            return LimitError(f"message too large for the server: {text}", smtp_code=552, enhanced_code=enhanced)
        return CommandFailed(f"{during} refused: {text}", smtp_code=exc.code, enhanced_code=enhanced)
    if isinstance(exc, ssl.SSLError | OSError):
        return map_ssl_error(exc)
    return CommandFailed(f"SMTP failure during {during}: {type(exc).__name__}")


def _options(options: list[str]) -> bytes:
    return b"".join(b" " + o.encode("ascii") for o in options)


# An address that needs no parsing on a command line: ASCII atext, no quoting (RFC 5321 §4.1.2).
_PLAIN_ADDRESS: Final = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9.-]+")


def _path(address: str) -> bytes:
    """``<address>`` for ``MAIL FROM``/``RCPT TO``, without parsing when the address is plain.

    Raises:
        UsageError: the address cannot go on a command line (RFC 5321 §4.1.2).
    """
    if _PLAIN_ADDRESS.fullmatch(address):
        return b"<" + address.encode("ascii") + b">"
    try:
        return quote_address(address).encode("ascii")
    except (ValueError, UnicodeEncodeError) as exc:
        raise UsageError(f"an address that cannot go on an SMTP command line: {address[:80]!r}",
                         requirement="RFC 5321 §4.1.2") from exc


class _ReplyTap:
    """The replies to a pipelined group (RFC 2920), read from aiosmtplib's connection.

    aiosmtplib reads one reply per command it writes and drops octets that arrive while a parsed
    reply waits to be picked up: it cannot read the several replies a pipelined group gets at
    once. For one transaction the tap takes the protocol's ``data_received`` (and hears of the
    end of the connection), parses replies (RFC 5321 §4.2, with aiosmtplib's bounds) into a
    queue, and gives everything back on exit.
    """

    def __init__(self, protocol: Any) -> None:
        self._protocol = protocol
        self._buffer = bytearray()
        self._replies: deque[SMTPResponse] = deque()
        self._error: MssanteError | None = None
        self._wake = asyncio.Event()
        self._want = 1  # wake the reader once this many replies are queued (or the session ends)
        self._closing = False  # a 421 came: no more replies will

    def __enter__(self) -> _ReplyTap:
        p = self._protocol
        eof, lost = p.eof_received, p.connection_lost

        def eof_received() -> bool:
            self._fail(ConnectionClosed("SMTP connection lost (EOF)"))
            return bool(eof())

        def connection_lost(exc: BaseException | None) -> None:
            self._fail(ConnectionClosed(f"SMTP connection lost: {exc}" if exc else "SMTP connection lost"))
            lost(exc)

        p.data_received, p.eof_received, p.connection_lost = self._feed, eof_received, connection_lost
        return self

    def __exit__(self, *exc_info: object) -> None:
        for name in ("data_received", "eof_received", "connection_lost"):
            vars(self._protocol).pop(name, None)  # the class's methods again

    @property
    def leftover(self) -> bool:
        """True if the server sent more than the replies read."""
        return bool(self._buffer) or bool(self._replies)

    def _fail(self, error: MssanteError) -> None:
        if self._error is None:
            self._error = error
        self._wake.set()

    def _feed(self, data: bytes) -> None:
        if self._error is not None:
            return
        self._buffer += data
        try:
            while (reply := self._parse()) is not None:
                self._replies.append(reply)
                self._closing = self._closing or reply.code == 421
        except MssanteError as exc:
            self._fail(exc)
        if self._ready(self._want):
            self._wake.set()

    def _parse(self) -> SMTPResponse | None:
        lines: list[bytes] = []
        offset = 0
        code = b""
        while (end := self._buffer.find(b"\n", offset)) >= 0:
            line = bytes(self._buffer[offset : end + 1])
            offset = end + 1
            if len(line) > _MAX_REPLY_LINE:
                raise PeerLimitError("the SMTP server sent a reply line too long", requirement="RFC 5321 §4.5.3.1.5")
            code = line[:3]
            if not code.isdigit() or line[3:4] not in (b" ", b"-", b"\r", b"\n"):
                raise RemoteProtocolError(f"the SMTP server sent no valid reply: {line[:80]!r}",
                                          requirement="RFC 5321 §4.2")
            lines.append(line[4:].strip(b" \t\r\n"))
            if line[3:4] != b"-":
                del self._buffer[:offset]
                return SMTPResponse(int(code), b"\n".join(lines).decode("utf-8", "surrogateescape"))
        if len(self._buffer) > _MAX_REPLY:
            raise PeerLimitError("the SMTP server sent a reply too long", requirement="RFC 5321 §4.5.3.1.5")
        return None

    def _ready(self, count: int) -> bool:
        return len(self._replies) >= count or self._error is not None or self._closing

    async def gather(self, count: int, wait: float | None) -> None:
        """Wait until ``count`` replies are queued, the server said 421, or the connection failed.

        The replies of a group are awaited together (one wake-up of the caller, not one per
        reply); ``wait`` bounds the silence between two replies, as one command's timeout would.

        Raises:
            TimeoutError: no reply for ``wait`` seconds.
        """
        self._want = count
        try:
            while not self._ready(count):
                queued = len(self._replies)
                self._wake.clear()
                try:
                    async with asyncio.timeout(wait):
                        await self._wake.wait()
                except builtins.TimeoutError as exc:
                    if len(self._replies) > queued:
                        continue  # the server is answering, reply by reply
                    raise TimeoutError("SMTP timeout waiting for a pipelined reply") from exc
        finally:
            self._want = 1

    async def reply(self, wait: float | None) -> SMTPResponse:
        """The next reply.

        Raises:
            ConnectionClosed: the connection ended first. TimeoutError: no reply in time.
            PeerLimitError, RemoteProtocolError: the server sent no valid reply.
        """
        if not self._replies:
            await self.gather(1, wait)
        if not self._replies:  # the connection failed, or the server said 421 and no more (RFC 5321 §3.8)
            raise self._error or ConnectionClosed("the server is closing the session (421)", smtp_code=421)
        return self._replies.popleft()


class SMTPSubmission:
    """One authenticated submission connection (use :meth:`open`); messages are sent one at a time."""

    def __init__(self, smtp: aiosmtplib.SMTP, *, server_name: str) -> None:
        """Wrap a connected, authenticated client; use :meth:`open` instead."""
        self._smtp = smtp
        self.server_name = server_name
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"SMTPSubmission({self.server_name!r}, connected={self.usable})"

    @property
    def usable(self) -> bool:
        """True while the connection is open."""
        return self._smtp.is_connected

    @property
    def size_limit(self) -> int | None:
        """The ``SIZE`` the server advertised under TLS (RFC 1870), None if none or unlimited."""
        value = self._smtp.esmtp_extensions.get("size", "").strip()
        return int(value) if value.isdigit() and int(value) > 0 else None

    @classmethod
    async def open(
        cls,
        host: str,
        port: int,
        *,
        tls: TLSClient,
        settings: ConnectionSettings,
        mechanism: ClientMechanism,
        server_name: str | None = None,
    ) -> SMTPSubmission:
        """Connect, STARTTLS (+ EHLO again), check revocation, authenticate.

        Raises:
            ConnectError, TimeoutError, ConnectionClosed: the connection failed.
            StartTLSError, CertificateError, RevocationError, TrustError: TLS refused or untrusted.
            TokenRejected, NotAuthorized, AuthUnavailable, AuthError: authentication refused.
            CommandFailed: the server refused EHLO.
        """
        name = server_name or host
        smtp = aiosmtplib.SMTP(
            hostname=settings.address_of(host), port=port, start_tls=False, timeout=settings.command_timeout
        )
        try:
            await smtp.connect(timeout=settings.connect_timeout)
        except (aiosmtplib.SMTPConnectError, aiosmtplib.SMTPConnectTimeoutError, OSError) as exc:
            cause = exc.__cause__ if isinstance(exc.__cause__, OSError) else exc
            if isinstance(exc, aiosmtplib.SMTPConnectTimeoutError):
                cause = builtins.TimeoutError()
            raise map_connect_error(cause, host, port) from exc
        except aiosmtplib.SMTPException as exc:
            raise smtp_error(exc, "connect") from exc
        try:
            async with asyncio.timeout(settings.connect_timeout):
                await starttls(smtp, tls_context=tls.context, server_hostname=name)
                await tls.verify_peer(smtp.get_transport_info("ssl_object"))
            await authenticate(smtp, mechanism)
        except builtins.TimeoutError as exc:
            smtp.close()
            raise TimeoutError(f"{host}:{port}: STARTTLS did not complete in time") from exc
        except BaseException:
            smtp.close()
            raise
        return cls(smtp, server_name=name)

    async def send(
        self, sender: str, recipients: tuple[str, ...], data: bytes, *, dsn: DSNParameters | None = None
    ) -> SubmissionResult:
        """Submit one message: ``MAIL FROM`` (+SIZE, RET, ENVID), ``RCPT TO`` (+NOTIFY, ORCPT), ``DATA``.

        Raises:
            LimitError: larger than the advertised ``SIZE`` (checked before ``MAIL``, RFC 1870 §6),
                or refused with ``552``.
            CommandFailed: the sender, every recipient, or the data was refused (or no recipient).
            ConnectionClosed, TimeoutError: the connection failed (nothing was accepted when it
                failed before ``DATA``).
            PeerLimitError, RemoteProtocolError: the server sent a reply too long or no valid reply.
            UsageError: a control character in an address or DSN parameter, or an address that
                cannot go on a command line (pipelined commands).
        """
        if not recipients:
            raise CommandFailed("the message has no recipient")
        limit = self.size_limit
        if limit is not None and len(data) > limit:
            raise LimitError(
                f"message of {len(data)} octets exceeds the server's SIZE {limit}", requirement="RFC 1870 §6"
            )
        smtp = self._smtp
        use_dsn = dsn is not None and smtp.supports_extension("dsn")
        mail_options = [f"SIZE={len(data)}"] if smtp.supports_extension("size") else []
        if use_dsn and dsn is not None:
            mail_options += dsn.mail_options
        if smtp.supports_extension("8bitmime") and not data.isascii():
            mail_options.append("BODY=8BITMIME")
        rcpt_options = [list(dsn.for_recipient(r)) if use_dsn and dsn is not None else [] for r in recipients]
        async with self._lock:
            if smtp.supports_extension("pipelining"):
                accepted, refused, response = await self._pipelined(sender, recipients, data, mail_options,
                                                                    rcpt_options)
            else:
                accepted, refused, response = await self._lockstep(sender, recipients, data, mail_options,
                                                                   rcpt_options)
        return SubmissionResult(
            accepted=tuple(accepted),
            refused=tuple(refused),
            reply=f"{response.code} {response.message.strip()[:200]}",
            dsn_requested=use_dsn,
        )

    async def _lockstep(self, sender: str, recipients: tuple[str, ...], data: bytes, mail_options: list[str],
                        rcpt_options: list[list[str]]) -> tuple[list[str], list[tuple[str, str]], SMTPResponse]:
        """One command, one reply: ``MAIL``, each ``RCPT``, ``DATA``, the message."""
        smtp = self._smtp
        try:
            await smtp.mail(sender, options=mail_options)
        except aiosmtplib.SMTPException as exc:
            error = smtp_error(exc, "MAIL FROM")
            if isinstance(error, ConnectionClosed):
                raise StaleSession(error.message, smtp_code=error.smtp_code) from exc
            raise error from exc
        accepted: list[str] = []
        refused: list[tuple[str, str]] = []
        for recipient, options in zip(recipients, rcpt_options, strict=True):
            try:
                await smtp.rcpt(recipient, options=options)
                accepted.append(recipient)
            except aiosmtplib.SMTPRecipientRefused as exc:
                refused.append((recipient, f"{exc.code} {exc.message.strip()[:200]}"))
            except aiosmtplib.SMTPException as exc:
                raise smtp_error(exc, "RCPT TO") from exc
        if not accepted:
            with contextlib.suppress(aiosmtplib.SMTPException):
                await smtp.rset()
            detail = "; ".join(f"{r}: {reply}" for r, reply in refused)
            raise CommandFailed(f"every recipient was refused: {detail}"[:400])
        try:
            response = await smtp.data(data)
        except aiosmtplib.SMTPException as exc:
            raise smtp_error(exc, "DATA") from exc
        return accepted, refused, response

    async def _pipelined(self, sender: str, recipients: tuple[str, ...], data: bytes, mail_options: list[str],
                         rcpt_options: list[list[str]]) -> tuple[list[str], list[tuple[str, str]], SMTPResponse]:
        """``MAIL``, every ``RCPT`` and ``DATA`` in one write, then their replies (RFC 2920 §3.1).

        With CHUNKING (RFC 3030) the message goes in that same write as ``BDAT <size> LAST``: one
        round trip instead of two, no dot-stuffing. A server must read a refused chunk's octets
        and answer ``BDAT`` with an error when no recipient was accepted (RFC 3030 §3), so the
        data never goes anywhere without a recipient; after a refused ``BDAT`` the transaction
        is reset (RFC 3030 §3: its state is indeterminate).
        """
        smtp = self._smtp
        chunking = smtp.supports_extension("chunking")
        lines = [b"MAIL FROM:" + _path(sender) + _options(mail_options)]
        lines += [b"RCPT TO:" + _path(r) + _options(o) for r, o in zip(recipients, rcpt_options, strict=True)]
        if any(_CONTROL.search(line) for line in lines):
            raise UsageError("a control character in an SMTP address or parameter", requirement="RFC 5321 §2.3.8")
        if chunking:
            body = normalize_message_line_endings(data)
            lines.append(b"BDAT %d LAST\r\n" % len(body) + body)
        else:
            lines.append(b"DATA\r\n")
        protocol = smtp.protocol
        if protocol is None or not smtp.is_connected:
            raise StaleSession("SMTP connection lost before MAIL FROM")
        timeout = smtp.timeout
        try:
            with _ReplyTap(protocol) as tap:
                protocol.write(b"\r\n".join(lines))
                try:
                    await tap.gather(len(lines), timeout)  # one reply per command line
                    mail = await tap.reply(timeout)
                except ConnectionClosed as exc:
                    raise StaleSession(exc.message) from exc
                if mail.code == 421:
                    raise StaleSession(f"the server closed the session at MAIL FROM: {mail.message[:200]}",
                                       smtp_code=421)
                replies = [await tap.reply(timeout) for _ in recipients]
                go = await tap.reply(timeout)
                accepted = [r for r, reply in zip(recipients, replies, strict=True)
                            if reply.code in (SMTPStatus.completed, SMTPStatus.will_forward)]
                refused = [(r, f"{reply.code} {reply.message.strip()[:200]}")
                           for r, reply in zip(recipients, replies, strict=True)
                           if reply.code not in (SMTPStatus.completed, SMTPStatus.will_forward)]
                if chunking:
                    response = go  # the reply to the whole message
                else:
                    if go.code == SMTPStatus.start_input and (mail.code != SMTPStatus.completed or not accepted):
                        # RFC 2920 §3.1: DATA was accepted with nobody to deliver to: a lone dot ends it.
                        protocol.write(b".\r\n")
                        await tap.reply(timeout)
                if mail.code != SMTPStatus.completed:
                    raise smtp_error(aiosmtplib.SMTPSenderRefused(mail.code, mail.message, sender), "MAIL FROM")
                if not accepted:
                    detail = "; ".join(f"{r}: {reply}" for r, reply in refused)
                    raise CommandFailed(f"every recipient was refused: {detail}"[:400])
                if not chunking:
                    if go.code != SMTPStatus.start_input:
                        raise smtp_error(aiosmtplib.SMTPDataError(go.code, go.message), "DATA")
                    protocol.write(PERIOD_REGEX.sub(b"..", normalize_message_line_endings(data)) + b".\r\n")
                    response = await tap.reply(timeout)
                if tap.leftover:  # more replies than commands: the session cannot be trusted any more
                    smtp.close()
        except MssanteError as exc:
            if isinstance(exc, TransportError | ProtocolError | LimitError) and not isinstance(exc, StaleSession):
                smtp.close()  # out of step with the server
            elif smtp.is_connected and not isinstance(exc, StaleSession):
                with contextlib.suppress(aiosmtplib.SMTPException, builtins.TimeoutError):
                    await smtp.rset()
            raise
        if response.code != SMTPStatus.completed:
            if chunking and smtp.is_connected and response.code != 421:
                with contextlib.suppress(aiosmtplib.SMTPException, builtins.TimeoutError):
                    await smtp.rset()  # RFC 3030 §3: after a refused BDAT the transaction must be reset
            raise smtp_error(aiosmtplib.SMTPDataError(response.code, response.message), "BDAT" if chunking else "DATA")
        return accepted, refused, response

    async def quit(self, *, grace: float = 2.0) -> None:
        """QUIT politely (bounded), then close. Never raises."""
        if self._smtp.is_connected:
            with contextlib.suppress(aiosmtplib.SMTPException, builtins.TimeoutError, OSError):
                await self._smtp.quit(timeout=grace)
        self._smtp.close()

    def abort(self) -> None:
        """Close at once."""
        self._smtp.close()
