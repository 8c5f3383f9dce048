"""One connection to a sandbox IMAP front: reading commands, STARTTLS, SASL, then the mailbox session.

The mailbox commands run in :class:`mssante.sandbox.imapd.Session` (no I/O); this module adds
what makes the sandbox an API LPS operator:

* ``AUTHENTICATE``/``LOGIN`` before STARTTLS refused with ``NO [PRIVACYREQUIRED]`` (RFC 3501
  §6.2.2–6.2.3, RFC 5530 §3; ECO.1.2.1), whatever the peer address;
* SASL (SASL-IR, RFC 4959) decided by the shared ``AccessDecider`` — the token check is
  asynchronous; a refused bearer attempt gets the RFC 7628 §3.2.2 JSON challenge first;
* line and literal caps (``BAD [TOOBIG]``, then ``BYE`` when the rest of the input cannot be
  skipped, RFC 7888 §4), a limit of consecutive bad commands, pre-auth and autologout timers;
* every command journalled (redacted), the TLS parameters too, authenticated sessions registered
  for fault injection (``* BYE [UNAVAILABLE]`` or an abrupt drop), the injected response delay.

Each answer is written with a single ``write()`` (one TLS record for a whole FETCH).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import re
import ssl
import time
from dataclasses import dataclass
from typing import Final, Literal

from cryptography import x509

from mssante.sandbox.fronts.authz import AccessDecider, AccessDecision, FrontKind
from mssante.sandbox.fronts.faults import Faults, LiveSession
from mssante.sandbox.fronts.imap_io import Channel, LineTooLong
from mssante.sandbox.fronts.imap_sasl import (
    SaslMalformed,
    decode_response,
    json_error,
    parse_authenticate,
    parse_oauthbearer,
    parse_plain,
    parse_xoauth2,
)
from mssante.sandbox.fronts.journal import Journal, SessionRecord
from mssante.sandbox.fronts.store import SPECIAL_USE, MailStore
from mssante.sandbox.imapd import BadCommand, Reader, Session
from mssante.wire import AuthOutcome

__all__ = ["FRONT_MECHANISMS", "FrontConnection", "FrontContext"]

_log = logging.getLogger(__name__)
_LITERAL: Final = re.compile(rb"~?\{(\d{1,20})(\+?)\}\r?\n$")
_HANDSHAKE_TIMEOUT: Final = 30.0

#: SASL mechanisms offered after STARTTLS, per front (EX_LPS_0300 fronts; §2.2 / §2.3 of the requirements).
FRONT_MECHANISMS: Final[dict[FrontKind, tuple[bytes, ...]]] = {
    "psc": (b"XOAUTH2", b"OAUTHBEARER"),
    "authcli": (b"PLAIN",),
}
_BASE_CAPS: Final = b"IMAP4rev1 LITERAL+"
#: After authentication. LIST's "(SPECIAL-USE)" selection and "RETURN (...)" are accepted without
#: announcing LIST-EXTENDED, whose other options (RECURSIVEMATCH, REMOTE...) are not implemented.
_SESSION_CAPS: Final = (b"IMAP4rev1 LITERAL+ SASL-IR IDLE NAMESPACE UNSELECT UIDPLUS MOVE CHILDREN SPECIAL-USE "
                        b"BINARY ENABLE")
_NOT_AUTHENTICATED: Final = frozenset({b"CAPABILITY", b"NOOP", b"LOGOUT", b"STARTTLS", b"AUTHENTICATE", b"LOGIN"})


@dataclass(kw_only=True)
class FrontContext:
    """What every connection of one front shares."""

    front: FrontKind
    decider: AccessDecider
    journal: Journal
    faults: Faults
    store: MailStore
    ssl_context: ssl.SSLContext
    max_literal: int
    max_line: int
    bad_command_limit: int = 10
    preauth_timeout: float = 60.0
    autologout: float = 1800.0


class _TooBig(Exception):
    def __init__(self, message: bytes, tag: bytes | None, *, skippable: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.tag = tag
        self.skippable = skippable


class FrontConnection:
    """Serves one client of a sandbox IMAP front, from greeting to close."""

    def __init__(self, ctx: FrontContext, channel: Channel) -> None:
        """Bind the connection to its front (the socket is already accepted) and open its journal record."""
        self.ctx = ctx
        self.channel = channel
        peer = channel.get_extra_info("peername")
        self.record: SessionRecord = ctx.journal.open(
            front=f"imap-{ctx.front}", protocol="imap", peer=f"{peer[0]}:{peer[1]}" if peer else "?"
        )
        self.peer_der: bytes | None = None
        self.tls_context = ctx.ssl_context
        self.tls = False
        self.session: Session | None = None
        self.live: LiveSession | None = None
        self.closing = False
        self.bad = 0  # consecutive BAD answers

    # ------------------------------------------------------------------ capabilities

    def capability(self) -> bytes:
        """The CAPABILITY list for the current step (RFC 3501 §7.2.1, RFC 4959 §3, RFC 6154 §5)."""
        if self.session is not None:
            return _SESSION_CAPS
        if not self.tls:
            return _BASE_CAPS + b" STARTTLS LOGINDISABLED"
        mechs = b" ".join(b"AUTH=" + m for m in FRONT_MECHANISMS[self.ctx.front])
        return _BASE_CAPS + b" SASL-IR " + mechs + (b" LOGINDISABLED" if self.ctx.front == "psc" else b"")

    # ------------------------------------------------------------------ input with limits

    async def _line(self, tag: bytes | None = None) -> bytes:
        try:
            line = await self.channel.readline()
        except LineTooLong:
            raise _TooBig(b"Command line too long.", tag) from None
        if not line.endswith(b"\n"):
            raise EOFError
        return line

    async def read_command(self) -> bytes:
        """Read one command: its line and literals (synchronizing ones get ``+``), within the caps.

        Raises:
            EOFError, OSError: the connection ended.
            _TooBig: a line or literal over the caps.
        """
        buf = bytearray(await self._line())
        while True:
            match = _LITERAL.search(buf)
            if match is None:
                return bytes(buf)
            size = int(match.group(1))
            plus = bool(match.group(2))
            tag = bytes(buf.split(b" ", 1)[0])
            if size > self.ctx.max_literal or len(buf) + size > 2 * self.ctx.max_literal:
                # RFC 7888 §4: a synchronizing literal can be refused before it is sent.
                raise _TooBig(b"Literal too large.", tag, skippable=not plus)
            if not plus:
                await self._write(b"+ OK\r\n")
            buf += await self.channel.readexactly(size)
            buf += await self._line(tag)

    # ------------------------------------------------------------------ output

    async def _write(self, data: bytes) -> None:
        self.channel.write(data)
        await self.channel.drain()

    async def respond(self, first: bytes, data: bytes, result: str, outcome: AuthOutcome | None = None) -> None:
        """Send an answer after the injected delay, and journal the command (with its ``outcome``
        when it is an authentication command).

        Raises:
            Nothing of ours (a closed connection is ignored).
        """
        if result.startswith("BAD"):
            self.bad += 1
            if self.bad >= self.ctx.bad_command_limit:
                data = b"* BYE Too many invalid IMAP commands.\r\n" + data
                self.closing = True
        else:
            self.bad = 0
        await self.ctx.faults.wait_delay()
        await self._write(data)
        self.ctx.journal.command(self.record, first, result, outcome)

    # ------------------------------------------------------------------ the cycle

    async def serve(self) -> None:
        """Run the connection until LOGOUT, EOF, a fatal error or the end of the front.

        Raises:
            Nothing of ours: command failures become ``NO [SERVERBUG]``; the caller logs the rest.
        """
        try:
            await self.ctx.faults.wait_delay()
            front = self.ctx.front.encode()
            await self._write(b"* OK [CAPABILITY " + self.capability() + b"] MSSante sandbox IMAP (" + front
                              + b" front) ready.\r\n")
            await self._cycle()
        finally:
            if self.live is not None:
                self.ctx.faults.unregister(self.live)
            if self.session is not None:
                self.session.close()
            self.ctx.journal.close(self.record)
            self.channel.close()

    async def _cycle(self) -> None:
        while not self.closing:
            # RFC 3501 §5.4: autologout timer (at least 30 minutes once authenticated).
            timeout = self.ctx.autologout if self.session is not None else self.ctx.preauth_timeout
            try:
                data = await asyncio.wait_for(self.read_command(), timeout)
            except TimeoutError:
                await self._write(b"* BYE Autologout; idle for too long.\r\n")
                return
            except _TooBig as exc:
                if exc.tag and exc.skippable:
                    await self.respond(exc.tag + b" <literal too large>",
                                       exc.tag + b" BAD [TOOBIG] " + exc.message + b"\r\n", "BAD [TOOBIG]")
                    continue
                if exc.tag:  # RFC 7888 §4: refuse the non-synchronizing literal, then close
                    await self.respond(exc.tag + b" <literal too large>",
                                       exc.tag + b" BAD [TOOBIG] " + exc.message + b"\r\n", "BAD [TOOBIG]")
                else:
                    await self._write(b"* BAD [TOOBIG] " + exc.message + b"\r\n")
                await self._write(b"* BYE Input limit exceeded.\r\n")
                return
            except (OSError, EOFError, asyncio.IncompleteReadError):
                return
            first = data.split(b"\n", 1)[0].rstrip(b"\r")
            if await self._execute(first, data) is None:
                return

    async def _execute(self, first: bytes, data: bytes) -> str | None:
        reader = Reader(data)
        try:
            tag = reader.tag()
            reader.sp()
            command = reader.atom().upper()
        except BadCommand:
            head = first.split(b" ", 1)[0] if first[:1] not in (b"", b" ") else b"*"
            tag = head if re.fullmatch(rb"[A-Za-z0-9.\-_]{1,64}", head) else b"*"
            await self.respond(first, tag + b" BAD Error in IMAP command received by server.\r\n", "BAD")
            return "BAD"
        try:
            if command == b"STARTTLS":
                return await self._starttls(tag, first, reader)
            if self.session is None:
                if command in (b"AUTHENTICATE", b"LOGIN"):
                    return await self._authenticate(tag, first, command, reader)
                if command not in _NOT_AUTHENTICATED:
                    await self.respond(first, tag + b" BAD Please authenticate first.\r\n", "BAD")
                    return "BAD"
                return await self._preauth(tag, first, command, reader)
            if command in (b"AUTHENTICATE", b"LOGIN"):
                await self.respond(first, tag + b" BAD Already authenticated.\r\n", "BAD")
                return "BAD"
            answer = self.session.run(tag, command, reader)
            if answer.idle:
                return await self._idle(tag, first, answer.data)
            await self.respond(first, answer.data, _result(answer.data, tag))
            if answer.logout:
                self.closing = True
                return None
            return answer.status
        except SaslMalformed as exc:
            await self._refuse(tag, first, AuthOutcome.MALFORMED, exc.message)
            return "BAD"
        except BadCommand as exc:
            if self.session is None and command in (b"AUTHENTICATE", b"LOGIN"):
                await self._refuse(tag, first, AuthOutcome.MALFORMED, exc.message)
            else:
                await self.respond(first, tag + b" BAD " + exc.message.encode() + b"\r\n", "BAD")
            return "BAD"
        except (OSError, EOFError, asyncio.IncompleteReadError):
            return None
        except _TooBig as exc:  # an over-long SASL line: the rest of it is still unread, so close
            self.closing = True
            too_big = AuthOutcome.TOOBIG
            detail = exc.message.decode("ascii", "replace")
            during_auth = command in (b"AUTHENTICATE", b"LOGIN")
            if during_auth:
                self.ctx.journal.auth(self.record, too_big, detail)
            await self.respond(first, b"* BYE Input limit exceeded.\r\n" + too_big.imap_response(tag, detail),
                               too_big.imap_result, too_big if during_auth else None)
            return None
        except Exception:
            _log.exception("IMAP %s front: command %r failed", self.ctx.front, command)
            await self.respond(first, tag + b" NO [SERVERBUG] Server error.\r\n", "NO [SERVERBUG]")
            return "NO"

    async def _preauth(self, tag: bytes, first: bytes, command: bytes, reader: Reader) -> str | None:
        reader.end()
        if command == b"CAPABILITY":
            await self.respond(first, b"* CAPABILITY " + self.capability() + b"\r\n" + tag
                               + b" OK Pre-login capabilities listed, post-login capabilities have more.\r\n", "OK")
        elif command == b"NOOP":
            await self.respond(first, tag + b" OK NOOP completed.\r\n", "OK")
        else:  # LOGOUT
            await self.respond(first, b"* BYE Logging out\r\n" + tag + b" OK Logout completed.\r\n", "OK")
            self.closing = True
            return None
        return "OK"

    # ------------------------------------------------------------------ IDLE (RFC 2177)

    async def _idle(self, tag: bytes, first: bytes, pending: bytes) -> str | None:
        session = self.session
        assert session is not None and self.session is not None
        await self._write(pending + b"+ idling\r\n")
        done = asyncio.ensure_future(self._line(tag))
        try:
            while True:
                view = session.view
                waiters: set[asyncio.Future[object]] = {done}  # type: ignore[arg-type]
                changed = asyncio.ensure_future(view.changed.wait()) if view is not None else None
                if changed is not None:
                    waiters.add(changed)  # type: ignore[arg-type]
                finished, _ = await asyncio.wait(waiters, timeout=self.ctx.autologout,
                                                 return_when=asyncio.FIRST_COMPLETED)
                if changed is not None and not changed.done():
                    changed.cancel()
                if not finished:
                    await self._write(b"* BYE Autologout; idle for too long.\r\n")
                    return None
                if done in finished:
                    break
                updates = session.updates()
                if updates:
                    await self._write(updates)
        except BaseException:
            done.cancel()
            raise
        line = done.result()
        if line.rstrip(b"\r\n").upper() != b"DONE":
            await self.respond(first, tag + b" BAD Expected DONE.\r\n", "BAD")
            return "BAD"
        await self.respond(first, session.updates() + tag + b" OK IDLE completed.\r\n", "OK")
        return "OK"

    # ------------------------------------------------------------------ STARTTLS

    async def _starttls(self, tag: bytes, first: bytes, reader: Reader) -> str | None:
        reader.end()
        if self.tls:
            await self.respond(first, tag + b" BAD TLS is already active.\r\n", "BAD")
            return "BAD"
        if self.channel.has_buffered():
            # Plaintext pipelined after STARTTLS would be read as if it came over TLS.
            await self.respond(first, tag + b" BAD Data after STARTTLS in the same packet; closing.\r\n", "BAD")
            self.closing = True
            return None
        # Chosen before the OK is sent: once it is, the ClientHello may arrive at any moment.
        self.tls_context = await self.ctx.faults.tls_context(self.ctx.ssl_context)  # fault: bad server certificate
        await self.respond(first, tag + b" OK Begin TLS negotiation now.\r\n", "OK")
        if not await self._start_tls():
            self.closing = True
            return None
        return "OK"

    async def _start_tls(self) -> bool:
        try:
            await self.channel.start_tls(self.tls_context, handshake_timeout=_HANDSHAKE_TIMEOUT)
        except (OSError, EOFError, TimeoutError) as exc:
            reason = getattr(exc, "reason", None) or type(exc).__name__
            self.ctx.journal.command(self.record, "<tls-handshake>", f"failed: {reason}")
            self.ctx.journal.update(self.record)
            return False
        ssl_object = self.channel.get_extra_info("ssl_object")
        self.tls = True
        self.record.starttls_at = time.time()
        if ssl_object is not None:
            self.record.tls_version = ssl_object.version()
            cipher = ssl_object.cipher()
            self.record.tls_cipher = cipher[0] if cipher else None
            self.peer_der = ssl_object.getpeercert(binary_form=True)
            if self.peer_der:
                with contextlib.suppress(ValueError):
                    cert = x509.load_der_x509_certificate(self.peer_der)
                    self.record.client_cert_subject = cert.subject.rfc4514_string()
        self.ctx.journal.command(self.record, "<tls-handshake>", f"OK {self.record.tls_version}")
        self.ctx.journal.update(self.record)
        return True

    # ------------------------------------------------------------------ authentication

    async def _sasl_line(self, tag: bytes) -> bytes:
        """Read one SASL line within the pre-authentication timeout."""
        try:
            return await asyncio.wait_for(self._line(tag), self.ctx.preauth_timeout)
        except TimeoutError:
            self.closing = True
            raise EOFError from None

    async def _authenticate(self, tag: bytes, first: bytes, command: bytes, reader: Reader) -> str | None:
        record = self.record
        is_login = command == b"LOGIN"
        initial: bytes | None = None
        if is_login:
            reader.sp()
            userid = reader.astring()
            reader.sp()
            reader.astring()  # the password is ignored: the certificate authenticates
            reader.end()
            mech = b"LOGIN"
        else:
            mech, initial = parse_authenticate(reader)
        record.auth_at = record.auth_at or time.time()
        record.mechanism = mech.decode("ascii", "replace")
        if not self.tls:  # RFC 3501 §6.2.2-6.2.3, RFC 5530 §3: credentials only over TLS
            if is_login or initial:
                record.credentials_before_tls = True
            await self._refuse(tag, first, AuthOutcome.PRIVACYREQUIRED, "credentials offered before STARTTLS")
            return "NO"
        front = self.ctx.front
        if (is_login and front != "authcli") or (not is_login and mech not in FRONT_MECHANISMS[front]):
            offered = b" ".join(FRONT_MECHANISMS[front]).decode("ascii")
            await self._refuse(tag, first, AuthOutcome.NOMECHANISM, "mechanism not offered",
                               f"Mechanism not offered on this front; use {offered}.")
            return "NO"
        if is_login:
            outcome, subject = await self.ctx.decider.certificate_plain(
                front, "", userid.decode("utf-8", "replace"), self.peer_der)
            return await self._finish(tag, first, outcome, subject, bearer=False)
        if initial is not None:
            data = decode_response(initial)
        else:
            await self._write(b"+ \r\n")
            line = await self._sasl_line(tag)
            if line.rstrip(b"\r\n") == b"*":  # RFC 3501 §6.2.2: the client cancels, the server answers BAD
                await self._refuse(tag, first, AuthOutcome.CANCELLED, "cancelled by the client")
                return "BAD"
            data = decode_response(line)
        if mech == b"PLAIN":
            plain = parse_plain(data)
            outcome, subject = await self.ctx.decider.certificate_plain(front, plain.authzid, plain.authcid,
                                                                         self.peer_der)
            return await self._finish(tag, first, outcome, subject, bearer=False)
        bearer = parse_xoauth2(data) if mech == b"XOAUTH2" else parse_oauthbearer(data)
        record.bal = bearer.user
        outcome = await self.ctx.decider.bearer(front, bearer.user, bearer.token)
        return await self._finish(tag, first, outcome, None, bearer=True)

    async def _refuse(self, tag: bytes, first: bytes, outcome: AuthOutcome, detail: str,
                      text: str | None = None) -> None:
        """Answer an authentication command that failed before any decision, and journal why."""
        self.ctx.journal.auth(self.record, outcome, detail)
        human = text if text is not None else detail if outcome is AuthOutcome.MALFORMED else None
        if human is not None:
            human = human.encode("ascii", "replace").decode("ascii")
        await self.respond(first, outcome.imap_response(tag, human), outcome.imap_result, outcome)

    async def _finish(self, tag: bytes, first: bytes, decision: AccessDecision, subject: str | None, *,
                      bearer: bool) -> str:
        record = self.record
        record.identity = decision.identity or record.identity
        record.bal = decision.bal or record.bal
        if subject:
            record.client_cert_subject = subject
        outcome = decision.code
        self.ctx.journal.auth(record, outcome, decision.reason)
        if not outcome.ok:
            if bearer:  # RFC 7628 §3.2.2: error JSON as a challenge; the client answers ^A (or empty)
                status = "403" if outcome is AuthOutcome.AUTHORIZATIONFAILED else "401"
                await self._write(b"+ " + base64.b64encode(json_error(status)) + b"\r\n")
                await self._sasl_line(tag)
            await self.respond(first, outcome.imap_response(tag), outcome.imap_result, outcome)
            return "NO"
        assert decision.bal is not None
        self.session = await self.ctx.store.open_session(
            decision.bal, special_use=SPECIAL_USE, capability=self.capability, max_append=self.ctx.max_literal)
        self.live = LiveSession(bal=decision.bal, front=f"imap-{self.ctx.front}", close=self.end)
        self.ctx.faults.register(self.live)
        await self.respond(first, tag + b" OK [CAPABILITY " + self.capability() + b"] Authentication successful.\r\n",
                           "OK", AuthOutcome.OK)
        return "OK"

    # ------------------------------------------------------------------ ending

    async def end(self, mode: Literal["bye", "drop"], text: bytes = b"Session ended by the operator.") -> None:
        """End the session now: ``bye`` sends ``* BYE [UNAVAILABLE]`` then closes; ``drop`` aborts TCP.

        Raises:
            Nothing: write errors on a dying connection are ignored.
        """
        self.closing = True
        if mode == "drop":
            self.channel.abort()
            return
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._write(b"* BYE [UNAVAILABLE] " + text + b"\r\n"), 5)
        self.channel.close()


def _result(data: bytes, tag: bytes) -> str:
    """The journal's result: the tagged line without tag and text beyond the status and code."""
    at = data.rfind(b"\r\n" + tag + b" ")
    line = data[at + 2:] if at >= 0 else data if data.startswith(tag + b" ") else b""
    words = line.rstrip(b"\r\n").split(b" ")[1:]
    if len(words) > 1 and words[1].startswith(b"["):
        code = words[1] if words[1].endswith(b"]") else words[1] + b"]"
        return (words[0] + b" " + code.split(b" ")[0].rstrip(b"]") + b"]").decode("ascii", "replace")
    return words[0].decode("ascii", "replace") if words else "BYE"
