"""One SMTP submission connection: aiosmtpd's protocol with the MSSanté operator rules.

aiosmtpd (1.4.6) gives the connection loop, STARTTLS and the simple verbs; this subclass
replaces EHLO, AUTH, MAIL, RCPT and DATA, adds BDAT (RFC 3030 CHUNKING), and routes every
command through a gate that:

* refuses anything but EHLO, STARTTLS, NOOP and QUIT before TLS with
  ``530 5.7.0 Must issue a STARTTLS command first`` (RFC 3207 §4), noting an AUTH that carried
  credentials in clear (``credentials_before_tls``);
* limits the AUTH line to 512 octets (RFC 4954 §4, RFC 5321 §4.5.3.1.4) like Dovecot;
* records the command, redacted, and its reply in the journal;
* reads and drops the chunk of a ``BDAT`` it refuses (RFC 3030 §2), so the octets of a chunk
  are never taken for commands.

A message sent with ``BDAT`` goes through :meth:`SubmissionSession._accept` like one sent with
``DATA``: same checks (:class:`~.smtp_data.BodyLimits`), trace line, dispatch (delivery, DSN,
responders) and journal entry.

The SASL exchange lives in :mod:`.smtp_auth`. aiosmtpd's line limits are class-level shared
dicts and a 1001-octet read buffer: this class reads with a 64 KiB buffer and sets its own
limits on the instance (ecosystem.md §2, pitfall 2).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from email.utils import format_datetime
from typing import Any, AnyStr, Final, cast

from aiosmtpd.smtp import SMTP, Envelope, TLSSetupException, syntax

from mssante.sandbox.fronts.journal import SessionRecord
from mssante.sandbox.fronts.smtp_auth import AuthMixin, FrontContext
from mssante.sandbox.fronts.smtp_data import ChunkedBody, ChunkRequest, parse_bdat, read_chunk, read_data
from mssante.sandbox.fronts.smtp_dispatch import Accepted, header_map, new_queue_id
from mssante.sandbox.fronts.smtp_options import Replies
from mssante.sandbox.fronts.smtp_params import MailRequest, ParamError, RcptRequest, parse_mail, parse_rcpt
from mssante.wire import AuthOutcome

__all__ = ["SubmissionSession"]

log = logging.getLogger(__name__)

READ_LIMIT: Final = 64 * 1024
_BEFORE_TLS: Final = frozenset({"EHLO", "STARTTLS", "NOOP", "QUIT"})  # RFC 3207 §4
_ENHANCED: Final = {250: "2.0.0", 221: "2.0.0", 252: "2.5.0", 500: "5.5.2", 501: "5.5.4", 502: "5.5.1",
                    503: "5.5.1", 504: "5.5.4", 554: "5.7.0"}
_MAX_BOGUS: Final = 10
_Verb = Callable[[str | None], Awaitable[None]]


def _enhance(text: str) -> str:
    """Add an RFC 3463 code to a single-line aiosmtpd reply that lacks one (RFC 2034 §3)."""
    code, sep, rest = text.partition(" ")
    if not sep or not code.isdigit() or int(code) not in _ENHANCED or rest[:1].isdigit():
        return text
    return f"{code} {_ENHANCED[int(code)]} {rest}"


class SubmissionEnvelope(Envelope):
    """aiosmtpd's envelope plus the parsed MAIL and RCPT parameters."""

    def __init__(self) -> None:
        super().__init__()
        self.mail: MailRequest | None = None
        self.rcpts: list[RcptRequest] = []
        self.refused = 0  # RCPT commands refused in this transaction
        self.bdat: ChunkedBody | None = None  # the chunks received so far (RFC 3030 §2)
        self.bdat_failed = False  # a chunk was refused: drop the rest until RSET (RFC 3030 §2)

    @property
    def chunked(self) -> bool:
        """Whether ``BDAT`` began in this transaction (no DATA, MAIL or RCPT then: RFC 3030 §3)."""
        return self.bdat is not None or self.bdat_failed


class _Hooks:
    """The aiosmtpd handler: enhanced status codes for the verbs aiosmtpd answers itself."""

    async def handle_NOOP(self, *_: Any) -> str:
        return "250 2.0.0 OK"

    async def handle_RSET(self, *_: Any) -> str:
        return "250 2.0.0 OK"

    async def handle_QUIT(self, *_: Any) -> str:
        return "221 2.0.0 Bye"

    async def handle_VRFY(self, *_: Any) -> str:
        return "252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery"

    async def handle_exception(self, error: Exception) -> str:
        if isinstance(error, TLSSetupException):
            return "454 4.7.0 TLS not available due to temporary reason"  # not sent: aiosmtpd closes
        log.error("submission session error", exc_info=error)
        return "451 4.3.0 Local error in processing"


class _Commands(dict[str, Callable[[str | None], Awaitable[None]]]):
    """The verb table; unknown verbs go to a fallback so they are journaled too."""

    def __init__(self, methods: dict[str, Callable[[str | None], Awaitable[None]]],
                 fallback: Callable[[str, str | None], Awaitable[None]]) -> None:
        super().__init__(methods)
        self._fallback = fallback

    def get(self, key: str, default: Any = None) -> Callable[[str | None], Awaitable[None]]:
        found = super().get(key)
        if found is not None:
            return found

        async def unknown(arg: str | None) -> None:
            await self._fallback(key, arg)

        return unknown


class SubmissionSession(AuthMixin, SMTP):
    """One connection to a submission front (created by :class:`~.smtp.SubmissionFront`)."""

    line_length_limit = READ_LIMIT  # the StreamReader limit; DATA lines are checked separately

    def __init__(self, ctx: FrontContext) -> None:
        """Serve one connection for the front described by ``ctx``."""
        self._ctx = ctx
        self._record: SessionRecord | None = None
        self._verb: str | None = None
        self._last_reply = ""
        self._bogus = 0
        self._init_auth()
        super().__init__(
            _Hooks(), data_size_limit=None, hostname=ctx.hostname, ident="ESMTP mssante sandbox",
            tls_context=ctx.ssl_context, require_starttls=False, timeout=ctx.options.timeout,
            auth_required=False, auth_require_tls=True, loop=asyncio.get_running_loop(),
        )
        # On the instance: the class attribute is a dict shared by every SMTP instance.
        self.command_size_limit = READ_LIMIT
        self.command_size_limits = collections.defaultdict(lambda: READ_LIMIT)
        methods = {verb: self._gate(verb, method) for verb, method in self._smtp_methods.items()}
        self._smtp_methods = _Commands(methods, self._unknown)

    @property
    def record(self) -> SessionRecord | None:
        """The journal record of this connection (None before it is made)."""
        return self._record

    async def handle_exception(self, error: Exception) -> str:
        """A failure inside a command: an error log with the traceback, unless the client was sent away.

        aiosmtpd closes the transport after a client's bogus-command budget (or a call limit) and
        its loop then still reads the lines buffered behind, answering a closed transport. That is
        the client being sent away, not a server fault: logged at info, without a traceback.
        """
        transport = self.transport
        if transport is None or transport.is_closing():
            log.info("submission session: client sent away (%s)", type(error).__name__)
            return "421 4.7.0 Closing connection"
        return await super().handle_exception(error)

    def _create_envelope(self) -> SubmissionEnvelope:
        return SubmissionEnvelope()

    # ------------------------------------------------------------------ connection

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """aiosmtpd hook; opens the journal record on the first (plain) connection."""
        first = self._record is None
        super().connection_made(transport)
        if first:
            peer = transport.get_extra_info("peername")
            text = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
            self._record = self._ctx.journal.open(front=self._ctx.journal_front, protocol="smtp", peer=text)
            self._ctx.sessions.add(self)

    def connection_lost(self, error: Exception | None) -> None:
        """aiosmtpd hook; closes the journal record and forgets the live session."""
        self._forget_live()
        if self._record is not None:
            self._ctx.journal.close(self._record)
        self._ctx.sessions.discard(self)
        super().connection_lost(error)

    async def push(self, status: AnyStr) -> None:
        """Send one reply, after the injected delay, with an enhanced code when missing."""
        text = status if isinstance(status, str) else status.decode("ascii", "replace")
        text = text.encode("ascii", "replace").decode("ascii")
        if self._verb not in ("EHLO", "HELO"):
            text = _enhance(text)
        self._last_reply = text.rsplit("\r\n", 1)[-1]
        await self._ctx.faults.wait_delay()
        await super().push(text)

    def abort(self, graceful: bool) -> None:
        """Close the connection (``graceful``) or drop it at once."""
        transport = cast(
            "asyncio.Transport | None", self.transport if graceful else (self._original_transport or self.transport)
        )
        if transport is None:
            return
        if graceful:
            transport.close()
        else:
            transport.abort()

    def _tls_active(self) -> bool:
        return self._tls_protocol is not None

    # ------------------------------------------------------------------ the gate

    def _gate(self, verb: str, method: _Verb) -> _Verb:
        async def gated(arg: str | None) -> None:
            self._verb, self._last_reply, self._auth_outcome = verb, "", None
            line = verb if arg is None else f"{verb} {arg}"
            try:
                await self._checked(verb, arg, line, method)
            finally:
                if self._record is not None:
                    self._ctx.journal.command(self._record, line, self._last_reply, self._auth_outcome)
                self._verb = None

        return gated

    async def _checked(self, verb: str, arg: str | None, line: str, method: _Verb) -> None:
        if verb == "AUTH":
            self._note_auth_attempt(arg, in_clear=self._tls_protocol is None)
            limit = self._ctx.options.auth_line_limit
        else:
            limit = self._ctx.options.command_line_limit
        if self._tls_protocol is None and verb not in _BEFORE_TLS:
            if verb == "AUTH":
                self._note_auth_outcome(AuthOutcome.PRIVACYREQUIRED, "AUTH before STARTTLS")
            await self._drop_chunk(verb, arg)
            await self.push(Replies.STARTTLS_FIRST)  # RFC 3207 §4, before any other check
            return
        if limit is not None and len(line.encode("utf-8", "surrogateescape")) + 2 > limit:
            if verb == "AUTH":
                self._note_auth_outcome(AuthOutcome.TOOBIG, f"AUTH line over {limit} octets")
            await self._drop_chunk(verb, arg)
            await self.push(Replies.AUTH_LINE_TOO_LONG if verb == "AUTH" else Replies.LINE_TOO_LONG)  # RFC 4954 §4
            return
        await method(arg)

    async def _unknown(self, verb: str, arg: str | None) -> None:
        self._verb, self._last_reply = verb, ""
        self._bogus += 1
        if self._bogus > _MAX_BOGUS:
            await self.push("421 4.7.0 Too many unrecognized commands, closing")
            self.abort(graceful=True)
        else:
            await self.push(f"500 5.5.1 Command {verb[:20]!r} unrecognized")
        if self._record is not None:
            self._ctx.journal.command(self._record, verb if arg is None else f"{verb} {arg}", self._last_reply)
        self._verb = None

    # ------------------------------------------------------------------ EHLO and STARTTLS

    @syntax("EHLO hostname")
    async def smtp_EHLO(self, hostname: str | None) -> None:
        """EHLO (RFC 5321 §4.1.1.1) with SIZE, DSN, ENHANCEDSTATUSCODES; AUTH, CHUNKING and PIPELINING after TLS.

        PIPELINING (RFC 2920) is not offered in clear: STARTTLS must end a group (§3.1) and
        nothing read before the handshake may be taken as said after it (RFC 3207 §4.2).
        """
        if not hostname:
            await self.push("501 5.5.4 Syntax: EHLO hostname")
            return
        self.envelope = self._create_envelope()
        assert self.session is not None
        self.session.extended_smtp = True
        self.session.host_name = hostname
        ext = [self.hostname, f"SIZE {self._ctx.options.max_size}", "8BITMIME", "ENHANCEDSTATUSCODES", "DSN"]
        if self._tls_protocol is None:
            ext.append("STARTTLS")
        else:
            ext.append("AUTH " + " ".join(self._ctx.mechanisms))
            if self._ctx.options.chunking:
                ext.append("CHUNKING")  # RFC 3030 §2; no BINARYMIME (see SubmissionOptions.chunking)
            if self._ctx.options.pipelining:
                ext.append("PIPELINING")
        ext.append("HELP")
        await self.push("\r\n".join(f"250{'-' if i < len(ext) - 1 else ' '}{e}" for i, e in enumerate(ext)))

    @syntax("STARTTLS")
    async def smtp_STARTTLS(self, arg: str | None) -> None:
        """STARTTLS (RFC 3207); records the TLS version and cipher in the journal.

        Raises:
            aiosmtpd.smtp.TLSSetupException: the TLS handshake failed (aiosmtpd then closes).
        """
        if self._tls_protocol is not None:
            await self.push("554 5.5.1 Error: TLS already active")
            return
        assert self.session is not None
        before = (self.session.host_name, self.session.extended_smtp)
        self.tls_context = await self._ctx.faults.tls_context(self._ctx.ssl_context)  # fault: bad server cert
        try:
            await super().smtp_STARTTLS(arg)
        except TLSSetupException as exc:
            self._last_reply = f"TLS handshake failed: {exc.__cause__ or exc}"[:300]
            raise
        if not self._tls_active() or self._record is None:
            return  # 501 syntax error
        ssl_object = self.transport.get_extra_info("ssl_object") if self.transport else None
        self._record.starttls_at = time.time()
        if ssl_object is not None:
            self._record.tls_version = ssl_object.version()
            cipher = ssl_object.cipher()
            self._record.tls_cipher = cipher[0] if cipher else None
        self._ctx.journal.update(self._record)
        self._last_reply = f"TLS established: {self._record.tls_version} {self._record.tls_cipher}"
        if not self._ctx.options.strict_ehlo_after_starttls:
            self.session.host_name, self.session.extended_smtp = before

    # ------------------------------------------------------------------ the mail transaction

    def _transaction_refusal(self) -> str | None:
        """The reply refusing a transaction command now (no EHLO, no AUTH), or None."""
        assert self.session is not None
        if not self.session.host_name:
            return Replies.SEND_EHLO
        if not self.session.authenticated:
            return Replies.AUTH_FIRST  # RFC 4954 §6
        return None

    async def _transaction_ready(self) -> bool:
        refusal = self._transaction_refusal()
        if refusal is not None:
            await self.push(refusal)
        return refusal is None

    @syntax("MAIL FROM: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_MAIL(self, arg: str | None) -> None:
        """MAIL (RFC 5321 §4.1.1.2): the sender must be the authenticated BAL (RFC 6409 §6.1)."""
        if not await self._transaction_ready():
            return
        envelope = self.envelope
        assert isinstance(envelope, SubmissionEnvelope)
        if envelope.mail is not None:
            await self.push(Replies.MAIL_AFTER_BDAT if envelope.chunked else "503 5.5.1 Error: nested MAIL command")
            return
        try:
            request = parse_mail(arg)
        except ParamError as exc:
            await self.push(exc.reply)
            return
        # RFC 6409 §6.1: the sender must be the authenticated BAL; the null reverse-path stays
        # allowed, since MDNs must be sent with it (RFC 8098 §3).
        if request.address and request.address.lower() != (self._bal or "").lower():
            await self.push(Replies.SENDER_NOT_OWNED)
            return
        if request.size is not None and request.size > self._ctx.options.max_size:
            await self.push(Replies.TOO_BIG)  # RFC 1870 §6.1
            return
        envelope.mail = request
        envelope.mail_from = request.address
        await self.push("250 2.1.0 Sender OK")

    @syntax("RCPT TO: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_RCPT(self, arg: str | None) -> None:
        """RCPT (RFC 5321 §4.1.1.3) with DSN parameters (RFC 3461 §4.1, §4.2)."""
        if not await self._transaction_ready():
            return
        envelope = self.envelope
        assert isinstance(envelope, SubmissionEnvelope)
        if envelope.mail is None:
            await self.push(Replies.NEED_MAIL)
            return
        if envelope.chunked:
            await self.push(Replies.RCPT_AFTER_BDAT)  # RFC 3030 §3 (Postfix's reply)
            return
        refusal = self._rcpt_refusal(envelope, arg)
        if isinstance(refusal, str):
            envelope.refused += 1
            await self.push(refusal)
            return
        request = refusal
        envelope.rcpts.append(request)
        envelope.rcpt_tos.append(request.address)
        await self.push("250 2.1.5 Recipient OK")

    def _rcpt_refusal(self, envelope: SubmissionEnvelope, arg: str | None) -> str | RcptRequest:
        """The reply refusing this RCPT, or the request to accept."""
        try:
            request = parse_rcpt(arg)
        except ParamError as exc:
            return exc.reply
        if len(envelope.rcpts) >= self._ctx.options.max_recipients:
            return Replies.TOO_MANY_RCPT  # RFC 5321 §4.5.3.1.10
        kind = self._ctx.dispatcher.classify(request.address)
        relayed = request.address.rpartition("@")[2].lower() in self._ctx.options.bounce_domains
        if kind == "foreign" and self._ctx.options.foreign_recipients == "refuse" and not relayed:
            return Replies.RELAY_DENIED
        if kind == "unknown" and self._ctx.options.unknown_recipients == "refuse":
            return Replies.UNKNOWN_USER
        return request

    @syntax("DATA")
    async def smtp_DATA(self, arg: str | None) -> None:
        """DATA (RFC 5321 §4.1.1.4): size (RFC 1870) and line checks, trace, delivery, journal.

        Raises:
            asyncio.IncompleteReadError: the client closed the connection mid-message.
        """
        if not await self._transaction_ready():
            return
        envelope = self.envelope
        assert isinstance(envelope, SubmissionEnvelope) and self.session is not None
        if envelope.chunked:
            envelope.bdat_failed = True  # RFC 3030 §3: 503, the transaction's state is indeterminate
            await self.push(Replies.DATA_AFTER_BDAT)
            return
        if envelope.mail is None or not envelope.rcpts:
            # RFC 5321 §3.3 / RFC 2920 §3.1: a pipelined DATA whose recipients were all refused
            # gets 554 "no valid recipients"; no RCPT (or no MAIL) at all is out of sequence.
            await self.push(Replies.NO_VALID_RCPT if envelope.mail and envelope.refused else Replies.NEED_RCPT)
            return
        if arg:
            await self.push("501 5.5.4 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        data, problem = await read_data(self._reader, self._ctx.options)
        if problem is not None:
            self.envelope = self._create_envelope()
            await self.push(problem)
            return
        await self.push(await self._accept(envelope, data, "DATA"))

    async def _accept(self, envelope: SubmissionEnvelope, data: bytes, verb: str) -> str:
        """Trace, dispatch and journal a message whose octets are all in; the reply to send.

        The one path after DATA's dot or BDAT's LAST chunk: delivery, DSNs and responders
        (:meth:`Dispatcher.dispatch`), the journal entry (with the verb that carried it), then
        the transaction is reset.
        """
        assert envelope.mail is not None
        queue_id = new_queue_id()
        accepted = Accepted(queue_id=queue_id, mail=envelope.mail, recipients=list(envelope.rcpts), data=data,
                            received=self._received(queue_id, envelope.rcpts))
        result = await self._ctx.dispatcher.dispatch(accepted)
        if self._record is not None:
            self._record.messages.append({
                "at": time.time(), "queue_id": queue_id, "mail_from": envelope.mail.address,
                "mail_options": envelope.mail.journal_options(), "rcpt_to": [r.address for r in envelope.rcpts],
                "rcpt_options": {r.address: {k: v for k, v in (("NOTIFY", ",".join(sorted(r.notify))
                                 if r.notify is not None else None), ("ORCPT", r.orcpt)) if v is not None}
                                 for r in envelope.rcpts},
                "size": len(data), "via": verb, "headers": header_map(data), **result,
            })
            self._ctx.journal.update(self._record)
        self.envelope = self._create_envelope()
        if verb == "BDAT":
            return f"250 2.0.0 Ok: {len(data)} bytes queued as {queue_id}"  # Postfix's reply
        return f"250 2.0.0 Ok: queued as {queue_id}"

    # ------------------------------------------------------------------ CHUNKING (RFC 3030)

    async def _drop_chunk(self, verb: str, arg: str | None) -> None:
        """Read and drop the chunk of a ``BDAT`` about to be refused (RFC 3030 §2).

        Raises:
            asyncio.IncompleteReadError: the client closed the connection mid-chunk.
        """
        request = parse_bdat(arg) if verb == "BDAT" else None
        if request is not None:
            await self._read_chunk(request, None)

    async def _read_chunk(self, request: ChunkRequest, body: ChunkedBody | None) -> None:
        """Read a chunk into ``body`` (or drop it); a connection lost meanwhile is journaled.

        Raises:
            asyncio.IncompleteReadError: the client closed the connection mid-chunk.
            asyncio.CancelledError: the connection was lost mid-chunk.
        """
        try:
            await read_chunk(self._reader, request, body)
        except (asyncio.IncompleteReadError, asyncio.CancelledError, ConnectionError):
            self._last_reply = (f"connection lost mid-chunk after {request.received} of {request.size} octets: "
                                "transaction discarded, nothing delivered (RFC 3030 section 2)")
            raise

    def _bdat_refusal(self, envelope: SubmissionEnvelope, request: ChunkRequest) -> str | None:
        """The reply refusing this chunk before its octets are read, or None to take them."""
        if not self._ctx.options.chunking:
            return Replies.BDAT_OFF
        refusal = self._transaction_refusal()
        if refusal is not None:
            return refusal
        if envelope.mail is None:
            return Replies.NEED_MAIL  # RFC 3030 §2: also any BDAT after BDAT LAST
        if envelope.bdat_failed:
            return Replies.BDAT_AFTER_FAILURE
        if not envelope.rcpts:
            return Replies.NO_VALID_RCPT if envelope.refused else Replies.NEED_RCPT
        if request.size == 0 and not request.last:
            return Replies.BDAT_NULL
        return None

    @syntax("BDAT size [LAST]")
    async def smtp_BDAT(self, arg: str | None) -> None:
        """BDAT (RFC 3030 §2): one chunk of the message; ``LAST`` ends it.

        A refused chunk is read and dropped before the reply (§2); after a refused chunk the
        transaction drops the chunks already pipelined behind it until ``RSET`` (or a ``LAST``
        chunk, which ends it). Size and line checks run as the octets arrive; the complete
        message then takes DATA's path (:meth:`_accept`). A malformed size cannot be skipped:
        ``521`` and the connection is closed.

        Raises:
            asyncio.IncompleteReadError: the client closed the connection mid-chunk.
        """
        request = parse_bdat(arg)
        if request is None:
            await self.push(Replies.BDAT_SYNTAX)
            self.abort(graceful=True)
            return
        envelope = self.envelope
        assert isinstance(envelope, SubmissionEnvelope)
        refusal = self._bdat_refusal(envelope, request)
        if refusal is not None:
            await self._read_chunk(request, None)
            if envelope.bdat_failed and request.last:
                self.envelope = self._create_envelope()  # the failed transaction ends with its LAST chunk
            await self.push(refusal)
            return
        body = envelope.bdat or ChunkedBody(self._ctx.options)
        if body.limits.would_exceed(request.size):
            await self._read_chunk(request, None)  # RFC 1870 §6.2, RFC 3030 §2: read, then refuse
            problem: str | None = Replies.TOO_BIG
        else:
            await self._read_chunk(request, body)
            problem = body.limits.problem
        if problem is not None:
            if request.last:
                self.envelope = self._create_envelope()  # the transaction is over, as after DATA
            else:
                envelope.bdat, envelope.bdat_failed = None, True
            await self.push(problem)
            return
        if not request.last:
            envelope.bdat = body
            await self.push(f"250 2.0.0 Ok: {request.size} bytes")
            return
        await self.push(await self._accept(envelope, body.data(), "BDAT"))

    def _received(self, queue_id: str, rcpts: list[RcptRequest]) -> bytes:
        """The ``Received:`` trace line (RFC 5321 §4.4); ESMTPSA = ESMTP + TLS + AUTH (RFC 3848)."""
        assert self.session is not None
        peer = self.session.peer
        ip = peer[0] if isinstance(peer, tuple) else str(peer)
        tls = ""
        if self._record is not None and self._record.tls_version:
            tls = f"\r\n\t(using {self._record.tls_version} with cipher {self._record.tls_cipher})"
        target = f"\r\n\tfor <{rcpts[0].address}>" if len(rcpts) == 1 else ""
        date = format_datetime(datetime.now().astimezone())
        return (f"Received: from {self.session.host_name} ([{ip}])\r\n\tby {self.hostname} (mssante sandbox) "
                f"with ESMTPSA id {queue_id}{tls}{target}; {date}\r\n").encode("utf-8", "replace")
