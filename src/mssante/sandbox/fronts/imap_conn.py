"""One connection to a sandbox IMAP front: pymap's command cycle with the operator's rules.

Subclasses pymap's :class:`~pymap.imap.IMAPConnection` and replaces its run loop to:

* refuse ``AUTHENTICATE``/``LOGIN`` before STARTTLS with ``NO [PRIVACYREQUIRED]`` (RFC 3501
  §6.2.2–6.2.3, RFC 5530 §3; ECO.1.2.1), whatever the peer address;
* run SASL itself (SASL-IR, RFC 4959) and decide with the shared ``AccessDecider`` — the token
  check is asynchronous; a refused bearer attempt gets the RFC 7628 §3.2.2 JSON challenge first;
* cap line and literal sizes (``BAD``/``BYE`` instead of unbounded buffering, RFC 7888 §4);
* journal every command (redacted) and the TLS parameters, and register authenticated sessions
  for fault injection (``* BYE [UNAVAILABLE]`` or an abrupt drop).
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
from typing import Any, Final, Literal

from cryptography import x509
from pymap.exceptions import ResponseError
from pymap.imap import IMAPConnection
from pymap.parsing.command import Command
from pymap.parsing.command.nonauth import AuthenticateCommand, LoginCommand, StartTLSCommand
from pymap.parsing.command.select import IdleCommand
from pymap.parsing.commands import Commands, InvalidCommand
from pymap.parsing.response import (
    CommandResponse,
    Response,
    ResponseBad,
    ResponseBye,
    ResponseCode,
    ResponseContinuation,
    ResponseNo,
    ResponseOk,
)
from pymap.parsing.state import ParsingInterrupt, ParsingState

from mssante.sandbox.fronts.authz import AccessDecider, AuthOutcome, FrontKind
from mssante.sandbox.fronts.faults import Faults, LiveSession
from mssante.sandbox.fronts.imap_sasl import (
    AuthenticateIRCommand,
    SaslMalformed,
    decode_response,
    json_error,
    parse_oauthbearer,
    parse_plain,
    parse_xoauth2,
)
from mssante.sandbox.fronts.imap_state import FRONT_MECHANISMS, FrontState
from mssante.sandbox.fronts.journal import Journal, SessionRecord
from mssante.sandbox.fronts.store import MailStore

__all__ = ["FrontConnection", "FrontContext"]

_log = logging.getLogger(__name__)
_LITERAL_PLUS: Final = re.compile(rb"\{(\d{1,20})\+\}\r?\n$")
_HANDSHAKE_TIMEOUT: Final = 30.0


@dataclass(kw_only=True)
class FrontContext:
    """What every connection of one front shares."""

    front: FrontKind
    pymap_config: Any
    commands: Commands
    decider: AccessDecider
    journal: Journal
    faults: Faults
    store: MailStore
    ssl_context: ssl.SSLContext
    max_literal: int
    preauth_timeout: float = 60.0
    autologout: float = 1800.0


class _TooBig(Exception):
    def __init__(self, message: bytes, tag: bytes | None) -> None:
        super().__init__(message)
        self.message = message
        self.tag = tag


class FrontConnection(IMAPConnection):
    """Serves one client of a sandbox IMAP front, from greeting to close."""

    @classmethod
    def _print(cls, log_format: str, output: str | bytes) -> None:
        # pymap dumps raw protocol lines at DEBUG, AUTHENTICATE responses (tokens) included, and
        # needs a context variable we do not set. The session journal records redacted commands
        # instead (ECO.1.2.5: no token in a log).
        return

    def __init__(self, ctx: FrontContext, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Bind the connection to its front (the socket is already accepted) and open its journal record.

        Raises:
            Nothing of ours.
        """
        self.ctx = ctx
        self.commands = ctx.commands
        self.config = ctx.pymap_config
        self.params = ctx.pymap_config.parsing_params
        self.bad_command_limit = ctx.pymap_config.bad_command_limit
        self.reader = reader
        self.writer = writer
        self.state = FrontState(None, ctx.pymap_config, ctx.front)
        peer = writer.get_extra_info("peername")
        self.record: SessionRecord = ctx.journal.open(
            front=f"imap-{ctx.front}", protocol="imap", peer=f"{peer[0]}:{peer[1]}" if peer else "?"
        )
        self.peer_der: bytes | None = None
        self.tls_context = ctx.ssl_context
        self.live: LiveSession | None = None
        self.closing = False

    # ------------------------------------------------------------------ input with limits

    async def _line(self) -> bytes:
        try:
            return await self.reader.readline()
        except ValueError:  # asyncio's LimitOverrunError: the line exceeds the reader's limit
            raise _TooBig(b"Command line too long.", None) from None

    async def readline(self) -> memoryview:
        """Read one command line, with its LITERAL+ literals (RFC 7888), within the size caps.

        Raises:
            EOFError: the peer closed the connection.
        """
        buf = bytearray(await self._line())
        while True:
            if not buf.endswith(b"\n"):
                raise EOFError
            match = _LITERAL_PLUS.search(buf) if buf.endswith((b"+}\n", b"+}\r\n")) else None
            if match is None:
                return memoryview(buf)
            length = int(match.group(1))
            if length > self.ctx.max_literal or len(buf) + length > 2 * self.ctx.max_literal:
                raise _TooBig(b"Literal too large.", bytes(buf.split(b" ", 1)[0]))
            buf += await self.reader.readexactly(length)
            buf += await self._line()

    async def read_command(self, state: Any) -> tuple[bytes, Command]:  # type: ignore[override]
        """Read and parse one command; also return its first line for the journal.

        Raises:
            EOFError, OSError: the connection ended.
        """
        line = await self.readline()
        first = bytes(line).split(b"\n", 1)[0]
        conts: list[memoryview] = []
        while True:
            params = self.params.copy(ParsingState(continuations=conts))
            try:
                cmd, _ = self.commands.parse(line, params)
            except ParsingInterrupt as interrupt:
                await self._interrupt(state, interrupt, conts)
            else:
                return first, cmd

    # ------------------------------------------------------------------ output

    async def respond(self, first: bytes, response: Response) -> None:
        """Send a tagged response after the injected delay, and journal the command.

        Raises:
            Nothing of ours (a closed connection is ignored, as pymap does).
        """
        await self.ctx.faults.wait_delay()
        await self.write_response(response)
        self.ctx.journal.command(self.record, first, bytes(response.text).decode("utf-8", "replace"))

    # ------------------------------------------------------------------ the cycle

    async def serve(self) -> None:
        """Run the connection until LOGOUT, EOF, a fatal error or the end of the front.

        Raises:
            Nothing of ours: command failures become ``NO [SERVERBUG]``; the caller logs the rest.
        """
        try:
            await self.ctx.faults.wait_delay()
            await self.write_response(await self.state.do_greeting())
            await self._cycle()
        finally:
            if self.live is not None:
                self.ctx.faults.unregister(self.live)
            with contextlib.suppress(Exception):
                await self.state.do_cleanup()
            self.ctx.journal.close(self.record)
            self.writer.close()

    async def _cycle(self) -> None:
        bad = 0
        while not self.closing:
            # RFC 3501 §5.4: autologout timer (at least 30 minutes once authenticated).
            timeout = self.ctx.autologout if self.state.authenticated else self.ctx.preauth_timeout
            try:
                first, cmd = await asyncio.wait_for(self.read_command(self.state), timeout)
            except TimeoutError:
                await self.write_response(ResponseBye(b"Autologout; idle for too long."))
                return
            except _TooBig as exc:
                if exc.tag:  # RFC 7888 §4: refuse the non-synchronizing literal, then close
                    bad_literal = ResponseBad(exc.tag, exc.message, ResponseCode.of(b"TOOBIG"))
                    await self.respond(exc.tag + b" <literal too large>", bad_literal)
                else:
                    await self.write_response(ResponseBad(b"*", exc.message, ResponseCode.of(b"TOOBIG")))
                await self.write_response(ResponseBye(b"Input limit exceeded."))
                return
            except (OSError, EOFError, asyncio.IncompleteReadError):
                return
            except Exception:  # a parser crash on odd input must not end the session
                _log.exception("IMAP %s front: unparseable input", self.ctx.front)
                await self.write_response(ResponseBad(b"*", b"Unparseable command."))
                continue
            response = await self._execute(first, cmd)
            if response is None:
                return
            if response.is_bad:
                bad += 1
                if self.bad_command_limit and bad >= self.bad_command_limit:
                    response.add_untagged(ResponseBye(b"Too many errors, disconnecting."))
            else:
                bad = 0
            await self.respond(first, response)
            if response.is_terminal or self.closing:
                return
            if isinstance(cmd, StartTLSCommand) and isinstance(response, ResponseOk) and not await self._start_tls():
                return

    async def _execute(self, first: bytes, cmd: Command) -> CommandResponse | None:
        try:
            if isinstance(cmd, InvalidCommand):
                code = cmd.parse_exc.code if cmd.parse_exc is not None else None
                return ResponseBad(cmd.tag, cmd.message, code)  # keeps [TOOBIG] (RFC 7889 §4)
            if isinstance(cmd, StartTLSCommand):
                return await self._starttls_check(cmd)
            if isinstance(cmd, AuthenticateCommand | LoginCommand) and not self.state.authenticated:
                return await self._authenticate(cmd)
            if isinstance(cmd, IdleCommand):
                response: CommandResponse = await self.idle(self.state, cmd)
                return response
            response = await self._exec(self.state.do_command(cmd))
            return response
        except ResponseError as exc:
            resp = exc.get_response(cmd.tag)
            return resp if isinstance(resp, CommandResponse) else ResponseNo(cmd.tag, bytes(resp.text))
        except SaslMalformed as exc:
            self.record.auth_result = f"BAD: {exc.message}"
            return ResponseBad(cmd.tag, exc.message.encode())
        except (OSError, EOFError, asyncio.IncompleteReadError):
            return None
        except _TooBig as exc:  # an over-long SASL line: the rest of it is still unread, so close
            self.closing = True
            bad = ResponseBad(cmd.tag, exc.message, ResponseCode.of(b"TOOBIG"))
            bad.add_untagged(ResponseBye(b"Input limit exceeded."))
            return bad
        except Exception:
            _log.exception("IMAP %s front: command %s failed", self.ctx.front, cmd.command)
            return ResponseNo(cmd.tag, b"Server error.", ResponseCode.of(b"SERVERBUG"))
        finally:
            await self.state.do_cleanup()

    # ------------------------------------------------------------------ STARTTLS

    async def _starttls_check(self, cmd: StartTLSCommand) -> CommandResponse:
        if self.state.tls:
            return ResponseBad(cmd.tag, b"TLS is already active.")
        if self.reader.at_eof() or len(getattr(self.reader, "_buffer", ())):
            # Plaintext pipelined after STARTTLS would be read as if it came over TLS.
            self.closing = True
            return ResponseBad(cmd.tag, b"Data after STARTTLS in the same packet; closing.")
        # Chosen before the OK is sent: once it is, the ClientHello may arrive at any moment.
        self.tls_context = await self.ctx.faults.tls_context(self.ctx.ssl_context)  # fault: bad server certificate
        response: CommandResponse = await self._exec(self.state.do_command(cmd))
        return response

    async def _start_tls(self) -> bool:
        try:
            await self.writer.start_tls(self.tls_context, ssl_handshake_timeout=_HANDSHAKE_TIMEOUT)
        except (OSError, EOFError, TimeoutError) as exc:
            reason = getattr(exc, "reason", None) or type(exc).__name__
            self.ctx.journal.command(self.record, "<tls-handshake>", f"failed: {reason}")
            self.ctx.journal.update(self.record)
            return False
        ssl_object = self.writer.get_extra_info("ssl_object")
        self.state.tls = True
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

    async def _sasl_line(self) -> bytes:
        """Read one SASL line within the pre-authentication timeout."""
        try:
            return bytes(await asyncio.wait_for(self.read_continuation(0), self.ctx.preauth_timeout))
        except TimeoutError:
            self.closing = True
            raise EOFError from None

    async def _client_response(self, cmd: AuthenticateIRCommand) -> bytes | None:
        """The SASL client response: the initial one (RFC 4959) or after an empty ``+``."""
        if cmd.initial is not None:
            return decode_response(cmd.initial)
        await self.write_response(ResponseContinuation(b""))
        line = await self._sasl_line()
        if line.rstrip(b"\r\n") == b"*":
            return None
        return decode_response(line)

    async def _authenticate(self, cmd: AuthenticateCommand | LoginCommand) -> CommandResponse:
        record = self.record
        is_login = isinstance(cmd, LoginCommand)
        mech = b"LOGIN" if isinstance(cmd, LoginCommand) else cmd.mech_name
        record.auth_at = record.auth_at or time.time()
        record.mechanism = mech.decode("ascii", "replace")
        if not self.state.tls:  # RFC 3501 §6.2.2-6.2.3, RFC 5530 §3: credentials only over TLS
            if is_login or (isinstance(cmd, AuthenticateIRCommand) and cmd.initial):
                record.credentials_before_tls = True
            record.auth_result = "PRIVACYREQUIRED"
            self.ctx.journal.update(record)
            return ResponseNo(cmd.tag, b"Use STARTTLS before authenticating.", ResponseCode.of(b"PRIVACYREQUIRED"))
        front = self.ctx.front
        if (is_login and front != "authcli") or (not is_login and mech not in FRONT_MECHANISMS[front]):
            record.auth_result = "CANNOT: mechanism not offered"
            self.ctx.journal.update(record)
            offered = b" ".join(FRONT_MECHANISMS[front])
            return ResponseNo(cmd.tag, b"Mechanism not offered on this front; use " + offered + b".",
                              ResponseCode.of(b"CANNOT"))
        if isinstance(cmd, LoginCommand):
            userid = cmd.userid.decode("utf-8", "replace")
            outcome, subject = await self.ctx.decider.certificate_plain(front, "", userid, self.peer_der)
            return await self._finish(cmd.tag, outcome, subject, bearer=False)
        if not isinstance(cmd, AuthenticateIRCommand):
            return ResponseBad(cmd.tag, b"Unexpected AUTHENTICATE form.")
        data = await self._client_response(cmd)
        if data is None:
            record.auth_result = "BAD: cancelled"
            return ResponseBad(cmd.tag, b"Authentication cancelled.")  # RFC 3501 §6.2.2
        if mech == b"PLAIN":
            plain = parse_plain(data)
            outcome, subject = await self.ctx.decider.certificate_plain(front, plain.authzid, plain.authcid,
                                                                         self.peer_der)
            return await self._finish(cmd.tag, outcome, subject, bearer=False)
        bearer = parse_xoauth2(data) if mech == b"XOAUTH2" else parse_oauthbearer(data)
        record.bal = bearer.user
        outcome = await self.ctx.decider.bearer(front, bearer.user, bearer.token)
        return await self._finish(cmd.tag, outcome, None, bearer=True)

    async def _finish(self, tag: bytes, outcome: AuthOutcome, subject: str | None, *, bearer: bool) -> CommandResponse:
        record = self.record
        record.identity = outcome.identity or record.identity
        record.bal = outcome.bal or record.bal
        if subject:
            record.client_cert_subject = subject
        record.auth_result = outcome.code if outcome.ok else f"{outcome.code}: {outcome.reason}"
        self.ctx.journal.update(record)
        if not outcome.ok:
            if bearer:  # RFC 7628 §3.2.2: error JSON as a challenge; the client answers ^A (or empty)
                status = "403" if outcome.code == "AUTHORIZATIONFAILED" else "401"
                await self.write_response(ResponseContinuation(base64.b64encode(json_error(status))))
                await self._sasl_line()
            text = {"AUTHENTICATIONFAILED": b"Authentication failed.",
                    "AUTHORIZATIONFAILED": b"Not authorized on this BAL.",
                    "UNAVAILABLE": b"Authentication service unavailable, try again later."}[outcome.code]
            return ResponseNo(tag, text, ResponseCode.of(outcome.code.encode()))
        assert outcome.bal is not None
        self.state.open_session(await self.ctx.store.open_session(outcome.bal))
        self.live = LiveSession(bal=outcome.bal, front=f"imap-{self.ctx.front}", close=self.end)
        self.ctx.faults.register(self.live)
        return ResponseOk(tag, b"Authentication successful.", self.state.capability)

    # ------------------------------------------------------------------ ending

    async def end(self, mode: Literal["bye", "drop"], text: bytes = b"Session ended by the operator.") -> None:
        """End the session now: ``bye`` sends ``* BYE [UNAVAILABLE]`` then closes; ``drop`` aborts TCP.

        Raises:
            Nothing: write errors on a dying connection are ignored.
        """
        self.closing = True
        if mode == "drop":
            transport = self.writer.transport
            transport.abort()
            return
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.write_response(ResponseBye(text, ResponseCode.of(b"UNAVAILABLE"))), 5)
        self.writer.close()
