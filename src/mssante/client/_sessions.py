"""The connections of one BAL: its servers, authenticated IMAP and SMTP sessions, and closing them all.

:class:`BALSessions` is the part of a :class:`~mssante.client.Mailbox` that owns sockets: the
shared IMAP command connection, the IMAP watch connections and the SMTP submission connection,
so that the mailbox can close them all at once when the professional's PSC session ends
(ECO.1.2.6), whatever they are doing. Authentication follows the ref2 §2.4 retry rule and
every attempt is traced through the mailbox.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from mssante.discovery import Endpoint, MailServers, ManualServers, Resolver, Service
from mssante.errors import ConnectionClosed, MssanteError, TransportError
from mssante.trace import Action
from mssante.wire.sasl import ClientMechanism

from ._auth import BALCredentials, with_auth_retry
from ._config import ConnectionSettings, MailboxOptions, TrustSettings
from ._imap import IMAPConnection
from ._servers import ServerFinder
from ._smtp import SMTPSubmission
from ._tls import TLSClient

if TYPE_CHECKING:
    from ._mailbox import Mailbox

__all__ = ["BALSessions"]

T = TypeVar("T")


class BALSessions:
    """Servers, TLS and the live connections of one mailbox (see :class:`~mssante.client.Mailbox`)."""

    def __init__(self, box: Mailbox, creds: BALCredentials, *, servers: MailServers | ManualServers | None,
                 resolver: Resolver | None, tls: TrustSettings, options: MailboxOptions) -> None:
        """Nothing is opened until first use."""
        self._box = box
        self._creds = creds
        self._options = options
        self._where = ServerFinder(box.address, box.kind, servers=servers, resolver=resolver, options=options)
        self._trust = tls
        self._tls_client: TLSClient | None = None
        self._imap: IMAPConnection | None = None
        self._imap_lock = asyncio.Lock()
        self._smtp: SMTPSubmission | None = None
        self.smtp_lock = asyncio.Lock()
        self._live: set[IMAPConnection | SMTPSubmission] = set()

    @property
    def live(self) -> bool:
        """True while a connection is open."""
        return bool(self._live)

    def tls(self) -> TLSClient:
        """The TLS context and revocation checker (built on first use).

        Raises:
            ConfigError: a trust or certificate file cannot be read.
            UsageError: a loosened ``ssl_context``.
        """
        if self._tls_client is None:
            self._tls_client = TLSClient.build(self._trust, self._creds.certificate)
        return self._tls_client

    # -- closing ---------------------------------------------------------------------------------
    def abort_all(self) -> None:
        """Close every connection at once."""
        for conn in list(self._live):
            conn.abort()
        self._live.clear()
        self._imap = self._smtp = None

    async def close_all(self, grace: float = 1.0) -> None:
        """LOGOUT / QUIT every connection (each bounded by ``grace`` seconds)."""
        live, self._live = list(self._live), set()
        self._imap = self._smtp = None
        await asyncio.gather(*(c.logout(grace=grace) if isinstance(c, IMAPConnection) else c.quit(grace=grace)
                               for c in live), return_exceptions=True)

    def release(self, conn: IMAPConnection | SMTPSubmission) -> None:
        """Forget a connection that was closed."""
        self._live.discard(conn)

    # -- authenticated connections --------------------------------------------------------------
    async def _authenticated(
        self, service: Service, open_one: Callable[[Endpoint, ClientMechanism, ConnectionSettings], Awaitable[T]]
    ) -> T:
        """Open and authenticate a connection under the ref2 §2.4 rules, tracing each attempt."""
        box = self._box

        async def attempt(mechanism: ClientMechanism) -> T:
            async def connect(endpoint: Endpoint) -> T:
                request = f"AUTHENTICATE {mechanism.name} ({service.value} {endpoint.host}:{endpoint.port})"
                limiter = self._options.connect_limiter
                try:
                    async with limiter.slot() if limiter is not None else contextlib.nullcontext():
                        result = await self._where.each_address(endpoint, lambda s: open_one(endpoint, mechanism, s))
                except MssanteError as exc:
                    box._trace("authenticate", request, str(exc), False)
                    raise
                box._trace("authenticate", request, "OK", True)
                return result

            return await self._where.first_reachable(service, connect)

        box._check_open()
        try:
            result = await with_auth_retry(self._creds, attempt, backoff=self._options.backoff,
                                           sleep=self._options.clock.sleep)
        except MssanteError as exc:
            box._note(exc)
            raise
        if box.is_closed():  # ended while we were connecting
            if isinstance(result, IMAPConnection | SMTPSubmission):
                result.abort()
            box._check_open()
        return result

    async def open_imap(self) -> IMAPConnection:
        """A new authenticated IMAP connection, owned until closed.

        Raises:
            MssanteError: see :meth:`Mailbox.list` (transport, trust, authentication, PSC).
        """
        async def open_one(endpoint: Endpoint, mechanism: ClientMechanism,
                           settings: ConnectionSettings) -> IMAPConnection:
            conn = await IMAPConnection.open(endpoint.host, endpoint.port, tls=self.tls(), settings=settings,
                                             server_name=endpoint.tls_server_name)
            try:
                await conn.authenticate(mechanism)
            except BaseException:
                conn.abort()
                raise
            return conn

        conn = await self._authenticated(Service.IMAP, open_one)
        self._live.add(conn)
        self._box._emit("connected", f"imap {conn.server_name}")
        return conn

    @contextlib.asynccontextmanager
    async def imap_session(self) -> AsyncIterator[IMAPConnection]:
        """The shared IMAP command connection, (re)opened as needed, one user at a time.

        Raises:
            MssanteError: see :meth:`open_imap`.
        """
        async with self._imap_lock:
            self._box._check_open()
            if self._imap is None or not self._imap.usable:
                if self._imap is not None:
                    self.release(self._imap)
                    self._box._emit("disconnected", "imap command connection lost")
                self._imap = await self.open_imap()
                self._box._on_new_imap()
            yield self._imap

    async def smtp_session(self, *, reconnect: bool = False) -> SMTPSubmission:
        """The shared submission connection, (re)opened as needed.

        Raises:
            MssanteError: see :meth:`Mailbox.send`.
        """
        self._box._check_open()
        if reconnect and self._smtp is not None:
            self._smtp.abort()
            self.release(self._smtp)
            self._smtp = None
        if self._smtp is None or not self._smtp.usable:
            async def open_one(endpoint: Endpoint, mechanism: ClientMechanism,
                               settings: ConnectionSettings) -> SMTPSubmission:
                return await SMTPSubmission.open(endpoint.host, endpoint.port, tls=self.tls(), settings=settings,
                                                 mechanism=mechanism, server_name=endpoint.tls_server_name)

            self._smtp = await self._authenticated(Service.SUBMISSION, open_one)
            self._live.add(self._smtp)
            self._box._emit("connected", f"submission {self._smtp.server_name}")
        return self._smtp

    async def imap_call(self, action: Action, request: str, fn: Callable[[IMAPConnection], Awaitable[T]]) -> T:
        """Run ``fn`` on the command connection, traced; reopen once if the connection was lost.

        Raises:
            MssanteError: what ``fn`` or the connection raised.
        """
        box = self._box
        for attempt in (0, 1):
            try:
                async with self.imap_session() as conn:
                    result = await fn(conn)
                    tagged = conn.last_tagged
            except (ConnectionClosed, TransportError) as exc:
                if attempt == 0 and not box.is_closed():
                    continue  # the server dropped an idle connection: reopen and replay once
                box._trace(action, request, str(exc), False)
                raise
            except MssanteError as exc:
                box._trace(action, request, str(exc), False)
                raise
            response = f"{tagged.status} {tagged.text}" if tagged is not None else "OK"
            box._trace(action, request, response, True)
            return result
        raise AssertionError("unreachable")  # pragma: no cover
