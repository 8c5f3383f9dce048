"""The byte stream of one IMAP front connection: TCP, then TLS after STARTTLS, with bounded buffers.

A small :class:`asyncio.Protocol` instead of asyncio's streams: after STARTTLS, asyncio's TLS layer
keeps a 256 KiB receive buffer per connection, which made an idle authenticated session cost
about 190 KiB of resident memory. Here TLS runs on :class:`ssl.SSLObject` over two
:class:`ssl.MemoryBIO` (RFC 8446 records in, records out) and the plaintext buffer holds only what
the client sent and the front has not read yet; reading pauses above :data:`_PAUSE_ABOVE`.

Raises only :class:`OSError` (``ssl.SSLError`` included), :class:`EOFError`,
:class:`asyncio.IncompleteReadError` and :class:`LineTooLong` to its reader.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Callable
from typing import Any, Final

__all__ = ["Channel", "LineTooLong"]

_PAUSE_ABOVE: Final = 1024 * 1024  # stop reading from the socket while this much plaintext waits
_READ_CHUNK: Final = 64 * 1024


class LineTooLong(ValueError):
    """A line longer than the channel's limit arrived (the rest of it is not read)."""


class Channel(asyncio.Protocol):
    """One accepted connection, plaintext until :meth:`start_tls`."""

    def __init__(self, limit: int, on_connect: Callable[[Channel], object] | None = None) -> None:
        """Prepare the channel; ``limit`` bounds a line (:meth:`readline`), ``on_connect`` runs once connected.

        Never raises.
        """
        self.limit = limit
        self._on_connect = on_connect
        self.transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._eof = False
        self._waiter: asyncio.Future[None] | None = None
        self._writable: asyncio.Future[None] | None = None
        self._ssl: ssl.SSLObject | None = None
        self._in: ssl.MemoryBIO | None = None
        self._out: ssl.MemoryBIO | None = None
        self._handshake: asyncio.Future[None] | None = None
        self._paused = False

    # ------------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport (called by asyncio)."""
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if self._on_connect is not None:
            self._on_connect(self)

    def data_received(self, data: bytes) -> None:
        """Take octets from the socket: decrypt them after STARTTLS (called by asyncio)."""
        if self._ssl is None:
            self._buf += data
        else:
            assert self._in is not None
            self._in.write(data)
            if self._handshake is not None and not self._handshake.done():
                self._do_handshake()
            else:
                self._decrypt()
        if self._waiter is not None:  # a command is still incomplete: do not let the client wait on our ACK
            self._quickack()
        self._wake()
        if len(self._buf) > _PAUSE_ABOVE and self.transport is not None and not self._paused:
            self._paused = True
            self.transport.pause_reading()

    def _quickack(self) -> None:
        """ACK now: the client may hold the rest of a command (an APPEND literal's final CRLF, sent
        separately by imaplib) until this data is acknowledged (Nagle), and Linux would delay the
        ACK by up to 40 ms since the server has nothing to answer yet."""
        sock = self.transport.get_extra_info("socket") if self.transport is not None else None
        if sock is not None and hasattr(socket, "TCP_QUICKACK"):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)

    def eof_received(self) -> bool:
        """The peer closed its sending side (called by asyncio).

        The transport stays open so that answers to commands already received still go out
        (``printf 'a LOGOUT\r\n' | nc``); the connection closes when the front is done.
        """
        self._eof = True
        self._wake()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        """The connection is gone (called by asyncio)."""
        self._eof = True
        self._wake()
        if self._handshake is not None and not self._handshake.done():
            self._handshake.set_exception(ConnectionResetError("connection lost during the TLS handshake"))
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    def pause_writing(self) -> None:
        """The transport's send buffer is full (called by asyncio)."""
        if self._writable is None or self._writable.done():
            self._writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        """The send buffer drained (called by asyncio)."""
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    # ------------------------------------------------------------------ TLS

    def _flush(self) -> None:
        if self._out is not None and self._out.pending and self.transport is not None:
            self.transport.write(self._out.read())

    def _do_handshake(self) -> None:
        assert self._ssl is not None and self._handshake is not None
        try:
            self._ssl.do_handshake()
        except ssl.SSLWantReadError:
            self._flush()
            return
        except (ssl.SSLError, OSError) as exc:
            self._flush()  # the alert, if any
            self._handshake.set_exception(exc)
            return
        self._flush()
        self._handshake.set_result(None)
        self._decrypt()  # application data may have come with the client's Finished

    def _decrypt(self) -> None:
        assert self._ssl is not None
        while True:
            try:
                chunk = self._ssl.read(_READ_CHUNK)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:  # close_notify
                self._eof = True
                break
            except ssl.SSLError:
                self._eof = True
                if self.transport is not None:
                    self.transport.abort()
                break
            if not chunk:
                self._eof = True
                break
            self._buf += chunk
        self._flush()  # TLS 1.3 tickets, key updates

    async def start_tls(self, context: ssl.SSLContext, *, handshake_timeout: float) -> None:
        """Run the server side of the TLS handshake on this connection.

        Raises:
            ssl.SSLError, OSError: the handshake failed or the connection was lost.
            TimeoutError: no complete handshake within ``handshake_timeout`` seconds.
        """
        self._in, self._out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self._ssl = context.wrap_bio(self._in, self._out, server_side=True)
        self._handshake = asyncio.get_running_loop().create_future()
        self._handshake.add_done_callback(lambda f: f.cancelled() or f.exception())  # retrieved even after a timeout
        if self._buf:  # never happens: the front refuses pipelined data after STARTTLS
            self._in.write(bytes(self._buf))
            self._buf.clear()
        self._do_handshake()
        await asyncio.wait_for(asyncio.shield(self._handshake), handshake_timeout)

    # ------------------------------------------------------------------ reading

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def _wait(self) -> None:
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def has_buffered(self) -> bool:
        """True if octets were received and not read yet (or the peer closed)."""
        return bool(self._buf) or self._eof

    async def readline(self) -> bytes:
        """Read up to and including ``\\n``; at EOF, what is left (possibly empty, without ``\\n``).

        Raises:
            LineTooLong: more than ``limit`` octets without a line end.
        """
        start = 0
        while True:
            at = self._buf.find(b"\n", start)
            if at >= 0:
                if at + 1 > self.limit:
                    raise LineTooLong(f"line longer than {self.limit} octets")
                line = bytes(self._buf[:at + 1])
                del self._buf[:at + 1]
                return line
            if len(self._buf) > self.limit:
                raise LineTooLong(f"line longer than {self.limit} octets")
            if self._eof:
                line = bytes(self._buf)
                self._buf.clear()
                return line
            start = len(self._buf)
            await self._wait()

    async def readexactly(self, size: int) -> bytes:
        """Read exactly ``size`` octets.

        Raises:
            asyncio.IncompleteReadError: the peer closed first.
        """
        while len(self._buf) < size:
            if self._eof:
                partial = bytes(self._buf)
                self._buf.clear()
                raise asyncio.IncompleteReadError(partial, size)
            await self._wait()
        data = bytes(self._buf[:size])
        del self._buf[:size]
        return data

    # ------------------------------------------------------------------ writing and closing

    def write(self, data: bytes) -> None:
        """Send ``data`` (encrypted after STARTTLS) in as few TLS records as it needs; never raises."""
        if self.transport is None or self.transport.is_closing():
            return
        if self._ssl is None:
            self.transport.write(data)
            return
        try:
            self._ssl.write(data)
        except ssl.SSLError:
            self.transport.abort()
            return
        self._flush()

    async def drain(self) -> None:
        """Wait while the socket's send buffer is full; never raises."""
        if self._writable is not None and not self._writable.done():
            await self._writable

    def get_extra_info(self, name: str) -> Any:
        """``ssl_object`` (after STARTTLS) or the transport's ``peername``, ``sockname``... (never raises)."""
        if name == "ssl_object":
            return self._ssl
        return self.transport.get_extra_info(name) if self.transport is not None else None

    def close(self) -> None:
        """Send TLS close_notify if TLS is up, then close; never raises."""
        if self.transport is None or self.transport.is_closing():
            return
        if self._ssl is not None and self._handshake is not None and self._handshake.done():
            with contextlib.suppress(ssl.SSLError, ValueError):
                self._ssl.unwrap()
            self._flush()
        self.transport.close()

    def abort(self) -> None:
        """Drop the connection without TLS or TCP close handshake; never raises."""
        if self.transport is not None:
            self.transport.abort()
