"""The sans-IO IMAP4rev1 client connection (h11 ``Connection`` style).

The driver feeds octets with :meth:`ClientConnection.receive_data`, pulls events with
:meth:`ClientConnection.next_event` until ``NEED_DATA``, and writes whatever ``send*`` returns.
One command is in flight at a time (no pipelining): untagged responses that arrive between
``send()`` and the matching :class:`Tagged` event belong to that command (or are unsolicited
updates, RFC 3501 §7), and are delivered as they arrive.
"""

from __future__ import annotations

import base64
import binascii
from typing import Final

from mssante.errors import LimitError, LocalProtocolError, RemoteProtocolError, StartTLSError
from mssante.secret import Secret

from ._abnf import BASE64, TAG
from ._buffer import Frame, Framer
from ._commands import Authenticate, Command, Login
from ._events import (
    NEED_DATA,
    Bye,
    CapabilityResponse,
    ConnectionEnded,
    Continuation,
    ContinuationPurpose,
    EnabledResponse,
    Event,
    Greeting,
    LiteralChunk,
    Marker,
    Tagged,
    UntaggedStatus,
)
from ._parser import RawContinuation, RawTagged, parse_response
from ._reader import ParseError
from ._serializer import Ctx, render
from ._state import Action, ClientState, StateMachine
from ._types import ResponseCode

__all__ = ["ClientConnection"]

_AUTH_COMMANDS: Final = frozenset({"LOGIN", "AUTHENTICATE"})


class ClientConnection:
    """An IMAP4rev1 client protocol engine that does no I/O.

    Args:
        tls: the transport is already TLS (implicit TLS, port 993, RFC 8314).
        allow_plaintext_auth: allow LOGIN/AUTHENTICATE before TLS (off by default; RFC 8314 §3,
            RFC 3501 §11.1); only for tests against a local server.
        max_line_length: longest response line (CRLF, literals excluded); 1 MiB holds a SEARCH of ~100,000 UIDs.
        max_literal_size: largest literal accepted (default 64 MiB: a 20 MiB attachment grows to
            ~27 MiB once base64-encoded, plus headroom).
        max_literals, max_response_size: most literals, and most octets held, in one response.
        stream_literals_over: FETCH literals larger than this many octets are delivered as
            :class:`LiteralChunk` events (not held in memory); ``None`` holds all literals.
        max_non_sync_literal: send literals larger than this as synchronizing ones even under
            LITERAL+ (RFC 7888 §4: with a non-synchronizing literal the server cannot refuse
            before receiving all octets); ``None``: no cap, ``0``: never non-synchronizing.
        tag_prefix: tags are ``prefix`` + a counter (``a001``, ``a002``...).

    Raises:
        LocalProtocolError: ``tag_prefix`` is not a valid tag start (RFC 3501 §9 ``tag``).
    """

    DEFAULT_MAX_LINE_LENGTH: Final = 1024 * 1024
    DEFAULT_MAX_LITERAL_SIZE: Final = 64 * 1024 * 1024
    DEFAULT_MAX_LITERALS: Final = 1000

    def __init__(
        self,
        *,
        tls: bool = False,
        allow_plaintext_auth: bool = False,
        max_line_length: int = DEFAULT_MAX_LINE_LENGTH,
        max_literal_size: int = DEFAULT_MAX_LITERAL_SIZE,
        max_literals: int = DEFAULT_MAX_LITERALS,
        stream_literals_over: int | None = None,
        max_non_sync_literal: int | None = None,
        tag_prefix: str = "a",
        max_response_size: int | None = None,
    ) -> None:
        if TAG.fullmatch(tag_prefix.encode("ascii", "replace")) is None:
            raise LocalProtocolError("tag_prefix must be ASTRING-CHARs without '+' (RFC 3501 §9)")
        self._sm = StateMachine()
        self._framer = Framer(
            max_line_length=max_line_length,
            max_literal_size=max_literal_size,
            max_literals=max_literals,
            stream_literals_over=stream_literals_over,
            max_response_size=max_response_size,
        )
        self._tls = tls
        self._allow_plaintext_auth = allow_plaintext_auth
        self._tag_prefix = tag_prefix
        self._max_non_sync = max_non_sync_literal
        self._counter = 0
        self._tag: str | None = None
        self._chunks: list[bytes] = []  # rest of the command, cut after synchronizing literals
        self._initial_due = False  # AUTHENTICATE without SASL-IR: initial response not sent yet
        self._caps: tuple[str, ...] | None = None
        self._caps_before_auth: tuple[str, ...] | None = None
        self._utf8 = False
        self._eof = False

    # -- read-only views ----------------------------------------------------------------------
    @property
    def state(self) -> ClientState:
        """The current :class:`ClientState`."""
        return self._sm.state

    @property
    def tls(self) -> bool:
        """True once the transport is TLS (constructor flag or :meth:`tls_established`)."""
        return self._tls

    @property
    def capabilities(self) -> tuple[str, ...] | None:
        """Server capabilities (upper-case), or ``None`` while unknown (e.g. after STARTTLS,
        RFC 3501 §6.2.1, or after authentication, §6.2.2): send :class:`Capability` then."""
        return self._caps

    @property
    def current_tag(self) -> str | None:
        """The tag of the command in flight, if any."""
        return self._tag

    def has(self, capability: str) -> bool:
        """True if ``capability`` is known to be advertised."""
        return self._caps is not None and capability.upper() in self._caps

    # -- input --------------------------------------------------------------------------------
    def receive_data(self, data: bytes) -> None:
        """Add octets received from the server; ``b""`` means the server closed (EOF).

        Raises:
            LocalProtocolError: data after EOF, or the connection is in the ERROR state.
            StartTLSError: octets arrived between STARTTLS OK and :meth:`tls_established`: they
                were sent in plaintext and could be an injection (RFC 3501 §6.2.1,
                CVE-2011-0411). The connection enters the ERROR state.
        """
        self._check_usable()
        if not data:
            self._eof = True
            return
        if self._eof:
            raise LocalProtocolError("receive_data() after EOF")
        if self._sm.base is ClientState.TLS_HANDSHAKE:
            self._sm.fail()
            raise StartTLSError(
                "plaintext received after STARTTLS OK and before TLS: possible injection",
                requirement="RFC 3501 §6.2.1",
            )
        self._framer.buffer.append(data)

    def next_event(self) -> Event | Marker:
        """Return the next event, or ``NEED_DATA``.

        Raises:
            RemoteProtocolError: the server broke the protocol (malformed response, unknown tag,
                unexpected continuation, EOF inside a response). The connection enters ERROR.
            PeerLimitError: a line, literal or response exceeded its limit; the connection enters ERROR.
            StartTLSError: octets followed STARTTLS OK in the same read (plaintext injection,
                RFC 3501 §6.2.1, CVE-2011-0411). The connection enters ERROR.
            LocalProtocolError: the connection is already in the ERROR state.
        """
        self._check_usable()
        try:
            item = self._framer.next()
        except (LimitError, RemoteProtocolError):
            self._sm.fail()
            raise
        if item is None:
            if not self._eof:
                return NEED_DATA
            if self._framer.has_partial():
                self._sm.fail()
                raise RemoteProtocolError("server closed the connection in the middle of a response")
            return ConnectionEnded()
        if isinstance(item, LiteralChunk):
            return item
        try:
            return self._interpret(item)
        except ParseError as exc:
            detail = f"({exc}): {item.describe()}"
            if self._sm.command in _AUTH_COMMANDS:
                # Never echo server text while credentials are in flight (a server may echo them).
                detail = "(withheld during authentication)"
            self._sm.fail()
            raise RemoteProtocolError(f"malformed response {detail}") from None
        except RemoteProtocolError:
            self._sm.fail()
            raise

    def _describe(self, frame: Frame) -> str:
        # Never echo a line while credentials are in flight (a server may echo the command).
        if self._sm.command in _AUTH_COMMANDS:
            return "<withheld during authentication>"
        return frame.describe()

    def _interpret(self, frame: Frame) -> Event:
        parsed = parse_response(frame, utf8=self._utf8)
        if self._sm.base is ClientState.AWAITING_GREETING:
            return self._greeting(parsed, frame)
        if isinstance(parsed, RawContinuation):
            return self._continuation(parsed, frame)
        if isinstance(parsed, RawTagged):
            return self._tagged(parsed, frame)
        if isinstance(parsed, Greeting):
            raise RemoteProtocolError(f"PREAUTH outside the greeting: {self._describe(frame)}")
        if isinstance(parsed, Bye):
            self._sm.on_bye()
        elif isinstance(parsed, CapabilityResponse):
            self._caps = parsed.capabilities
        elif isinstance(parsed, EnabledResponse) and "UTF8=ACCEPT" in parsed.capabilities:
            self._utf8 = True  # RFC 6855 §3: mailbox names are UTF-8 from now on
        elif isinstance(parsed, UntaggedStatus):
            self._apply_code(parsed.code)
        return parsed

    def _greeting(self, parsed: Event | RawContinuation | RawTagged, frame: Frame) -> Greeting:
        # RFC 3501 §7.1: the greeting is an untagged OK, PREAUTH or BYE.
        if isinstance(parsed, UntaggedStatus) and parsed.status == "OK":
            greeting = Greeting(status="OK", code=parsed.code, text=parsed.text)
        elif isinstance(parsed, Bye):
            greeting = Greeting(status="BYE", code=parsed.code, text=parsed.text)
        elif isinstance(parsed, Greeting):
            greeting = parsed
        else:
            raise RemoteProtocolError(f"expected a greeting (RFC 3501 §7.1): {frame.describe()}")
        self._sm.on_greeting(greeting.status)
        self._apply_code(greeting.code)
        return greeting

    def _continuation(self, parsed: RawContinuation, frame: Frame) -> Continuation:
        try:
            purpose = self._sm.on_continuation()
        except RemoteProtocolError as exc:
            raise RemoteProtocolError(f"{exc.message}: {self._describe(frame)}") from None
        text = parsed.text.decode("utf-8", "replace")
        if purpose is not ContinuationPurpose.SASL:
            return Continuation(purpose=purpose, text=text)
        # RFC 3501 §6.2.2: the challenge is base64; "+" alone or "+ " is an empty challenge.
        raw = parsed.text.strip(b" ")
        if BASE64.match(raw) is None:
            raise RemoteProtocolError("SASL challenge is not base64 (RFC 3501 §6.2.2)")
        try:
            challenge = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise RemoteProtocolError("SASL challenge is not base64 (RFC 3501 §6.2.2)") from exc
        due, self._initial_due = self._initial_due, False
        return Continuation(purpose=purpose, text=text, challenge=challenge, initial_response_due=due)

    def _tagged(self, parsed: RawTagged, frame: Frame) -> Tagged:
        if self._tag is None or parsed.tag != self._tag:
            raise RemoteProtocolError(f"tagged response with unknown tag {parsed.tag[:20]!r}: {self._describe(frame)}")
        command = self._sm.on_tagged(parsed.status == "OK")
        self._tag = None
        self._chunks = []
        self._initial_due = False
        if command == "STARTTLS" and parsed.status == "OK" and len(self._framer.buffer):
            # RFC 3501 §6.2.1 / RFC 2595 §3.1: anything after the OK and before the handshake
            # was sent in plaintext (CVE-2011-0411 command injection pattern): refuse it.
            self._sm.fail()
            raise StartTLSError(
                "octets followed STARTTLS OK before the TLS handshake: possible injection",
                requirement="RFC 3501 §6.2.1",
            )
        if command in _AUTH_COMMANDS and parsed.status != "OK" and self._caps is None:
            self._caps = self._caps_before_auth
        self._apply_code(parsed.code)
        return Tagged(tag=parsed.tag, command=command, status=parsed.status, code=parsed.code, text=parsed.text)

    def _apply_code(self, code: ResponseCode | None) -> None:
        if code is not None and code.name == "CAPABILITY" and isinstance(code.data, tuple):
            self._caps = code.data

    # -- output -------------------------------------------------------------------------------
    def send(self, command: Command) -> bytes:
        """Start ``command``; return the octets to write.

        If the command holds a synchronizing literal, only the octets up to the literal
        announcement are returned: wait for a ``Continuation(purpose=LITERAL)`` event, then
        call :meth:`send_literal`.

        Raises:
            LocalProtocolError: a command is in flight; the command is not allowed in this state
                (RFC 3501 §6); it needs a capability the server did not advertise; LOGIN or
                AUTHENTICATE before TLS (unless ``allow_plaintext_auth``); LOGIN under
                LOGINDISABLED (RFC 3501 §6.2.3); STARTTLS on a TLS connection; an argument
                cannot be encoded; the connection is closed or in ERROR.
        """
        self._check_usable()
        if self._eof:
            raise LocalProtocolError("the server closed the connection")
        name = command.name
        self._check_command(command)
        ctx = Ctx(
            literal_plus=self.has("LITERAL+"),
            literal_minus=self.has("LITERAL-"),
            utf8=self._utf8,
            binary=self.has("BINARY"),
            sasl_ir=self.has("SASL-IR"),
            max_non_sync=self._max_non_sync,
        )
        tag = f"{self._tag_prefix}{self._counter + 1:03d}"
        chunks = render(f"{tag} {name}".encode(), command.parts(ctx), ctx)
        self._sm.start(name, sync_literal=len(chunks) > 1)
        self._counter += 1
        self._tag = tag
        self._chunks = chunks[1:]
        if isinstance(command, Authenticate):
            self._initial_due = not ctx.sasl_ir and command.initial_response is not None
        if name in _AUTH_COMMANDS:
            # RFC 3501 §6.2.2: capabilities may change after authentication.
            self._caps_before_auth, self._caps = self._caps, None
        return chunks[0]

    def _check_command(self, command: Command) -> None:
        name = command.name
        if name in _AUTH_COMMANDS and not self._tls and not self._allow_plaintext_auth:
            raise LocalProtocolError(
                f"{name} before TLS would expose credentials; use STARTTLS or implicit TLS",
                requirement="RFC 8314 §3",
            )
        if name == "STARTTLS" and self._tls:
            raise LocalProtocolError("STARTTLS on a connection that is already TLS (RFC 3501 §6.2.1)")
        if self._caps is None:
            return
        if command.requires is not None and not self.has(command.requires):
            raise LocalProtocolError(f"{name} needs the {command.requires} capability, not advertised")
        if isinstance(command, Login) and self.has("LOGINDISABLED"):
            raise LocalProtocolError("the server advertises LOGINDISABLED (RFC 3501 §6.2.3)")
        if isinstance(command, Authenticate) and not self.has("AUTH=" + command.mechanism.upper()):
            raise LocalProtocolError(f"SASL mechanism {command.mechanism.upper()} is not advertised")

    def send_literal(self) -> bytes:
        """After a ``Continuation(purpose=LITERAL)``: the literal and the rest of the command
        (up to the next synchronizing literal, if any).

        Raises:
            LocalProtocolError: no ``+`` was received for a pending literal.
        """
        self._check_usable()
        self._sm.act(Action.SEND_LITERAL_MORE if len(self._chunks) > 1 else Action.SEND_LITERAL_LAST)
        return self._chunks.pop(0)

    def send_continuation(self, response: bytes | Secret) -> bytes:
        """Answer a SASL challenge (RFC 3501 §6.2.2): the base64 line to write.

        Raises:
            LocalProtocolError: no SASL challenge is pending.
        """
        self._check_usable()
        self._sm.act(Action.SEND_CONTINUATION)
        raw = response.reveal().encode("utf-8") if isinstance(response, Secret) else response
        return base64.b64encode(raw) + b"\r\n"

    def cancel_authentication(self) -> bytes:
        """Cancel the SASL exchange with ``*`` (RFC 3501 §6.2.2); the server answers BAD.

        Raises:
            LocalProtocolError: no SASL challenge is pending.
        """
        self._check_usable()
        self._sm.act(Action.CANCEL)
        return b"*\r\n"

    def idle_done(self) -> bytes:
        """End IDLE with ``DONE`` (RFC 2177 §3).

        Raises:
            LocalProtocolError: IDLE is not active (its ``+`` has not been received).
        """
        self._check_usable()
        self._sm.act(Action.DONE)
        return b"DONE\r\n"

    def tls_established(self) -> None:
        """Tell the engine the TLS handshake after STARTTLS OK succeeded.

        Capabilities become unknown (RFC 3501 §6.2.1: the client MUST discard them and
        re-issue CAPABILITY).

        Raises:
            LocalProtocolError: not waiting for a TLS handshake.
        """
        self._check_usable()
        self._sm.tls_established()
        self._tls = True
        self._caps = None

    def _check_usable(self) -> None:
        if self._sm.base is ClientState.ERROR:
            raise LocalProtocolError("the IMAP connection is unusable after an earlier error; close it")
