"""The asyncio IMAP driver: the sans-IO engine (:mod:`mssante.wire.imap`) fed by asyncio streams.

The I/O loop is :meth:`IMAPConnection._next` (read until the engine yields an event) and
:meth:`IMAPConnection.stream` (write a command and its literals, yield untagged data until the
tagged answer). Safe STARTTLS (RFC 3501 §6.2.1, RFC 8314 §3, ECO.1.0.2, ECO.1.2.1): a PREAUTH
greeting is refused; STARTTLS must be advertised (never "continue in clear"); octets received
after STARTTLS OK and before the handshake are refused (the engine checks what it was fed, the
driver what the stream buffered, CVE-2011-0411); capabilities are read again and the server
certificate checked for revocation before anything else; credentials only over TLS.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import ssl
from collections.abc import AsyncGenerator

from mssante.errors import (
    AuthError,
    CommandFailed,
    ConnectionClosed,
    LocalProtocolError,
    MssanteError,
    PeerLimitError,
    RemoteProtocolError,
    StartTLSError,
    TimeoutError,
)
from mssante.trust import map_ssl_error
from mssante.wire.imap import (
    NEED_DATA,
    Authenticate,
    Bye,
    Capability,
    ClientConnection,
    ClientState,
    Command,
    ConnectionEnded,
    Continuation,
    ContinuationPurpose,
    Event,
    Examine,
    Greeting,
    Idle,
    Logout,
    Select,
    StartTLS,
    Tagged,
)
from mssante.wire.sasl import ClientMechanism

from ._config import ConnectionSettings
from ._imap_results import SelectInfo, imap_auth_error
from ._tls import TLSClient, map_connect_error, start_tls

__all__ = ["IMAPConnection"]

_READ_SIZE = 65536
# Octets one response may hold in memory (lines and literals not streamed): a FETCH of summaries
# or a LIST stays far below; a literal announced beyond it is refused before it is read.
_MAX_RESPONSE_HELD = 16 * 1024 * 1024


def _buffered(reader: asyncio.StreamReader) -> int:
    # asyncio has no public "peek": StreamReader keeps unread octets in ``_buffer``. Octets there
    # after STARTTLS OK arrived in plaintext and would be read as if they came over TLS.
    buffer = getattr(reader, "_buffer", b"")
    return len(buffer) if isinstance(buffer, bytes | bytearray) else 0


class IMAPConnection:
    """One IMAP connection over TLS (use :meth:`open`), one command at a time.

    Memory is bounded whatever the server sends: the engine holds at most one line
    (1 MiB), one response (16 MiB, or ``stream_over`` + 1 MiB) and streams larger FETCH
    literals; :meth:`command` keeps at most :attr:`max_kept_responses` untagged responses and
    :attr:`max_kept_octets` received octets per command. Beyond, :class:`PeerLimitError` and
    the connection is dropped (a server answering STARTTLS with 16 MB of small untagged lines
    made the client grow to 430 MB, issue 13).

    Attributes:
        engine: the sans-IO engine (state, capabilities).
        server_name: the name the certificate was checked against (SRV target).
        last_tagged: the tagged answer of the last command.
        bye: the ``* BYE`` received, if any.
        max_kept_responses: most untagged responses :meth:`command` keeps (a ``UID FETCH`` of
            summaries of 100,000 messages fits).
        max_kept_octets: most octets received while :meth:`command` collects its answer.
    """

    max_kept_responses: int = 100_000
    max_kept_octets: int = 32 * 1024 * 1024

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        settings: ConnectionSettings,
        server_name: str,
    ) -> None:
        """Wrap an open stream; use :meth:`open` instead."""
        self._reader, self._writer, self._settings = reader, writer, settings
        self.server_name = server_name
        self.engine = ClientConnection(
            stream_literals_over=settings.stream_over,
            max_literal_size=settings.max_message_size + 4096,
            max_response_size=max(_MAX_RESPONSE_HELD, settings.stream_over + 1024 * 1024),
        )
        self._received = 0  # octets read from the socket
        self.last_tagged: Tagged | None = None
        self.bye: Bye | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"IMAPConnection({self.server_name!r}, state={self.engine.state.name})"

    # -- opening ------------------------------------------------------------------------------
    @classmethod
    async def open(
        cls, host: str, port: int, *, tls: TLSClient, settings: ConnectionSettings, server_name: str | None = None
    ) -> IMAPConnection:
        """Connect, read the greeting, STARTTLS, check the certificate, read capabilities.

        Args:
            host: the SRV target (or configured host); ``settings.resolve`` may map it to an IP.
            port: the IMAP port (143, STARTTLS).
            tls: the TLS context and revocation checker.
            settings: timeouts.
            server_name: the certificate name, default ``host`` (RFC 6125 reference identity).

        Raises:
            ConnectError, TimeoutError: the connection could not be opened in time.
            StartTLSError: PREAUTH greeting, STARTTLS missing or refused, plaintext injection.
            CertificateError, RevocationError, TrustError: the server is not trusted.
            ConnectionClosed: the server said BYE or closed.
            RemoteProtocolError: the server broke the protocol.
        """
        address = settings.address_of(host)
        try:
            async with asyncio.timeout(settings.connect_timeout):
                reader, writer = await asyncio.open_connection(address, port)
        except (OSError, builtins.TimeoutError) as exc:
            raise map_connect_error(exc, host, port) from exc
        self = cls(reader, writer, settings=settings, server_name=server_name or host)
        try:
            async with asyncio.timeout(settings.connect_timeout):
                await self._greeting()
                await self._starttls(tls)
                await self.command(Capability())  # RFC 3501 §6.2.1: discard and re-read them
        except builtins.TimeoutError as exc:
            self.abort()
            raise TimeoutError(f"{host}:{port}: no complete greeting/STARTTLS in time") from exc
        except BaseException:
            self.abort()
            raise
        return self

    async def _greeting(self) -> None:
        event = await self._next()
        if not isinstance(event, Greeting):  # pragma: no cover - the engine only returns a greeting first
            raise RemoteProtocolError("expected a greeting (RFC 3501 §7.1)")
        if event.preauth:
            raise StartTLSError("PREAUTH greeting refused: the session would skip STARTTLS and authentication",
                                requirement="RFC 3501 §6.2.1, ECO.1.2.1")
        if event.status == "BYE":
            raise ConnectionClosed(f"the server refused the connection: {event.text[:200]}")

    async def _starttls(self, tls: TLSClient) -> None:
        if self.engine.capabilities is None:
            await self.command(Capability())
        if not self.engine.has("STARTTLS"):
            raise StartTLSError(
                "the server does not offer STARTTLS (stripped?); refusing to continue in clear",
                requirement="ECO.1.0.2",
            )
        tagged, _ = await self.command(StartTLS(), check=False)
        if not tagged.ok:
            raise StartTLSError(f"STARTTLS refused: {tagged.status} {tagged.text[:200]}", requirement="ECO.1.0.2")
        self._refuse_plaintext()
        try:
            await start_tls(self._writer, tls.context, server_hostname=self.server_name)
        except (ssl.SSLError, OSError) as exc:
            raise map_ssl_error(exc) from exc
        self._refuse_plaintext()
        self.engine.tls_established()
        await tls.verify_peer(self._writer.get_extra_info("ssl_object"))

    def _refuse_plaintext(self) -> None:
        if _buffered(self._reader):
            raise StartTLSError(
                "octets followed STARTTLS OK before the TLS handshake: possible injection",
                requirement="RFC 3501 §6.2.1",
            )

    # -- the I/O loop -------------------------------------------------------------------------
    @property
    def usable(self) -> bool:
        """True while commands can be sent (open, not in ERROR or LOGOUT)."""
        return not self._closed and self.engine.state not in (ClientState.ERROR, ClientState.LOGOUT)

    async def _write(self, data: bytes) -> None:
        self._writer.write(data)
        try:
            async with asyncio.timeout(self._settings.command_timeout):
                await self._writer.drain()
        except builtins.TimeoutError as exc:
            self.abort()
            raise TimeoutError("writing to the IMAP server timed out") from exc
        except (ssl.SSLError, OSError) as exc:
            self.abort()
            raise ConnectionClosed(f"connection lost while writing: {exc}") from exc

    async def _next(self, wait: float | None = None) -> Event:
        """The next event from the engine, reading from the socket as needed."""
        try:
            while (event := self.engine.next_event()) is NEED_DATA:
                async with asyncio.timeout(wait or self._settings.command_timeout):
                    data = await self._reader.read(_READ_SIZE)
                self._received += len(data)
                self.engine.receive_data(data)
        except builtins.TimeoutError as exc:
            raise TimeoutError("the IMAP server did not answer in time") from exc
        except (ssl.SSLError, OSError) as exc:
            self.abort()
            raise map_ssl_error(exc) from exc
        except MssanteError:  # RemoteProtocolError, LimitError, StartTLSError: the stream is lost
            self.abort()
            raise
        assert not isinstance(event, type(NEED_DATA))
        if isinstance(event, ConnectionEnded):
            self.abort()
            said = f" after BYE: {self.bye.text[:200]}" if self.bye is not None else ""
            raise ConnectionClosed(f"the IMAP server closed the connection{said}")
        if isinstance(event, Bye):
            self.bye = event
        return event

    async def stream(self, command: Command, *, check: bool = True) -> AsyncGenerator[Event, None]:
        """Send ``command`` and yield its untagged data until the tagged answer.

        The answer is then in :attr:`last_tagged`. Closing the iterator early aborts the
        connection (the stream cannot be resynchronised).

        Raises:
            CommandFailed: the answer is NO/BAD (when ``check``), with ``imap_code``.
            LocalProtocolError: the engine refused the command in this state.
            ConnectionClosed, TimeoutError, RemoteProtocolError, LimitError: the connection failed.
        """
        if self._closed:
            raise ConnectionClosed("the IMAP connection is closed")
        await self._write(self.engine.send(command))
        finished = False
        try:
            while True:
                event = await self._next()
                if isinstance(event, Continuation):
                    if event.purpose is not ContinuationPurpose.LITERAL:
                        raise RemoteProtocolError(f"unexpected continuation during {command.name}")
                    await self._write(self.engine.send_literal())
                    continue
                if isinstance(event, Tagged):
                    finished = True
                    self.last_tagged = event
                    if check and not event.ok:
                        code = event.code.name if event.code is not None else None
                        raise CommandFailed(f"{event.command} {event.status}: {event.text[:200]}", imap_code=code)
                    return
                yield event
        finally:
            if not finished:
                self.abort()

    async def command(self, command: Command, *, check: bool = True) -> tuple[Tagged, list[Event]]:
        """Run ``command``; return its tagged answer and untagged data.

        Raises:
            CommandFailed: see :meth:`stream`.
            PeerLimitError: the server sent more untagged data than :attr:`max_kept_responses`
                or :attr:`max_kept_octets` allow (the connection is dropped).
            ConnectionClosed, TimeoutError, RemoteProtocolError, LimitError: the connection failed.
        """
        events: list[Event] = []
        start = self._received
        async with contextlib.aclosing(self.stream(command, check=check)) as answer:
            async for event in answer:
                events.append(event)
                if len(events) > self.max_kept_responses or self._received - start > self.max_kept_octets:
                    self.abort()
                    raise PeerLimitError(
                        f"the server sent more untagged data than kept for one command ({len(events)} responses, "
                        f"{self._received - start} octets; limits {self.max_kept_responses} and "
                        f"{self.max_kept_octets}) during {command.name}"
                    )
        assert self.last_tagged is not None
        return self.last_tagged, events

    # -- authentication -----------------------------------------------------------------------
    async def authenticate(self, mechanism: ClientMechanism) -> None:
        """AUTHENTICATE with ``mechanism`` (SASL-IR when advertised, RFC 4959; else after ``+``).

        A JSON error challenge is answered as the mechanism says (empty line for XOAUTH2);
        capabilities are read again afterwards (RFC 3501 §6.2.2).

        Raises:
            LocalProtocolError: the connection is not TLS (nothing was sent, ECO.1.2.1).
            AuthError: the mechanism is not offered.
            TokenRejected, NotAuthorized, AuthUnavailable, StartTLSError: see :func:`imap_auth_error`.
            RemoteProtocolError: an unexpected challenge (the exchange is cancelled).
            ConnectionClosed, TimeoutError: the connection failed.
        """
        if not self.engine.tls or not isinstance(self._writer.get_extra_info("ssl_object"), ssl.SSLObject):
            raise LocalProtocolError("refusing to authenticate without TLS", requirement="ECO.1.2.1")
        name = str(mechanism.name)
        if not self.engine.has("AUTH=" + name):
            raise AuthError(f"the server does not offer SASL {name} under TLS", requirement="RFC 3501 §6.2.2")
        await self._write(self.engine.send(Authenticate(mechanism=name, initial_response=mechanism.initial_response())))
        while True:
            event = await self._next()
            if isinstance(event, Continuation) and event.purpose is ContinuationPurpose.SASL:
                if event.initial_response_due:
                    answer = mechanism.initial_response()
                else:
                    try:
                        answer = mechanism.respond(event.challenge or b"")
                    except RemoteProtocolError:
                        await self._write(self.engine.cancel_authentication())
                        self.abort()
                        raise
                await self._write(self.engine.send_continuation(answer))
            elif isinstance(event, Tagged):
                self.last_tagged = event
                if not event.ok:
                    raise imap_auth_error(event)
                break
        if self.engine.capabilities is None:
            await self.command(Capability())

    # -- mailbox helpers ----------------------------------------------------------------------
    async def select(self, mailbox: str, *, readonly: bool = False) -> SelectInfo:
        """SELECT (or EXAMINE when ``readonly``) ``mailbox``.

        Raises:
            CommandFailed: no such mailbox, or refused.
            ConnectionClosed, TimeoutError, RemoteProtocolError: the connection failed.
        """
        command: Command = Examine(mailbox=mailbox) if readonly else Select(mailbox=mailbox)
        tagged, events = await self.command(command)
        return SelectInfo.parse(mailbox, tagged, events, readonly=readonly)

    async def idle(self, *, duration: float) -> AsyncGenerator[Event, None]:
        """IDLE (RFC 2177): yield untagged updates until the caller stops or ``duration`` seconds pass.

        Leaving the iteration (break, ``aclose()``, end of ``duration``) sends ``DONE`` and reads the
        tagged answer; use it with :func:`contextlib.aclosing`.

        Untagged updates the server sends before its ``+`` are yielded first.

        Raises:
            CommandFailed: the server refused IDLE.
            LocalProtocolError: IDLE is not advertised.
            PeerLimitError: the server flooded untagged responses before its ``+``.
            ConnectionClosed, TimeoutError, RemoteProtocolError: the connection failed.
        """
        await self._write(self.engine.send(Idle()))
        # A server may send untagged updates before its "+" (RFC 3501 §7: at any time): a
        # delivery made just as IDLE starts. They are the caller's first updates, not noise.
        early: list[Event] = []
        while True:
            event = await self._next()
            if isinstance(event, Tagged):
                self.last_tagged = event
                code = event.code.name if event.code is not None else None
                raise CommandFailed(f"IDLE {event.status}: {event.text[:200]}", imap_code=code)
            if isinstance(event, Continuation) and event.purpose is ContinuationPurpose.IDLE:
                break
            if len(early) >= self.max_kept_responses:
                self.abort()
                raise PeerLimitError(f"more than {self.max_kept_responses} untagged responses before IDLE's '+'")
            early.append(event)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + duration
        ended = False
        try:
            for event in early:
                yield event
            while (remaining := deadline - loop.time()) > 0:
                try:
                    event = await self._next(wait=remaining)
                except TimeoutError:
                    if not self.usable:
                        raise
                    break
                if isinstance(event, Tagged):  # the server ended IDLE itself
                    ended, self.last_tagged = True, event
                    return
                yield event
        except GeneratorExit:
            raise  # the caller stopped iterating: DONE below
        except BaseException:
            self.abort()
            raise
        finally:
            if not ended and self.usable:
                try:
                    await self._write(self.engine.idle_done())
                    while not isinstance(event := await self._next(), Tagged):
                        pass
                    self.last_tagged = event
                except BaseException:
                    self.abort()
                    raise

    # -- closing ------------------------------------------------------------------------------
    def abort(self) -> None:
        """Close the socket at once (no LOGOUT)."""
        self._closed = True
        self._writer.transport.abort()

    async def logout(self, *, grace: float = 2.0) -> None:
        """LOGOUT politely (bounded by ``grace`` seconds), then close. Never raises for network errors."""
        if self.usable:
            with contextlib.suppress(MssanteError, builtins.TimeoutError):
                async with asyncio.timeout(grace):
                    await self.command(Logout(), check=False)
        self.abort()
