"""The session core of a mailbox: servers, authenticated connections, traces, and the end of a PSC session.

:class:`MailboxCore` owns every connection of one BAL (the IMAP command connection, IMAP
watch connections, the SMTP submission connection) so that it can close them all at once when
the professional's PSC session ends (ECO.1.2.6), whatever they are doing. The public
operations are in :mod:`mssante.client._mailbox`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Literal, TypeVar

from mssante.credentials import ClientCertificate, TokenSource
from mssante.discovery import Endpoint, MailServers, ManualServers, Resolver, Service
from mssante.errors import ConnectionClosed, MssanteError, PSCError, TransportError, UsageError
from mssante.trace import Action, TraceSink, make_record
from mssante.wire.sasl import ClientMechanism

from ._auth import BALCredentials, with_auth_retry
from ._config import BALKind, ConnectionSettings, MailboxOptions, TrustSettings
from ._imap import IMAPConnection
from ._models import MailboxEvent
from ._servers import ServerFinder
from ._smtp import SMTPSubmission
from ._tls import TLSClient

__all__ = ["MailboxCore"]

log = logging.getLogger("mssante.client")
T = TypeVar("T")
Listener = Callable[[MailboxEvent], None]


class MailboxCore:
    """Connections, authentication and traces of one BAL (see :class:`~mssante.client.Mailbox`)."""

    def __init__(
        self,
        address: str,
        *,
        kind: BALKind,
        credentials: TokenSource | ClientCertificate,
        servers: MailServers | ManualServers | None = None,
        resolver: Resolver | None = None,
        tls: TrustSettings,
        traces: TraceSink | None = None,
        options: MailboxOptions | None = None,
    ) -> None:
        self.address = address
        self.kind: BALKind = kind
        self.options = options or MailboxOptions()
        self._creds = BALCredentials(address, kind, credentials, app_password=self.options.app_password)
        self._where = ServerFinder(address, kind, servers=servers, resolver=resolver, options=self.options)
        self._trust = tls
        self._tls_client: TLSClient | None = None
        self._traces = traces
        self._imap: IMAPConnection | None = None
        self._imap_lock = asyncio.Lock()
        self._smtp: SMTPSubmission | None = None
        self._smtp_lock = asyncio.Lock()
        self._live: set[IMAPConnection | SMTPSubmission] = set()
        self._listeners: list[Listener] = []
        self._closed = False
        self._end_reason: str | None = None
        self.ended = asyncio.Event()
        self._unsubscribe: Callable[[], None] | None = None
        on_end = getattr(credentials, "on_end", None)
        if callable(on_end):  # PSCSession, BridgeTokenSource (ECO.1.2.6)

            def ended(_source: object) -> None:
                self.end("the PSC session ended")

            on_end(ended)
            remove = getattr(credentials, "remove_on_end", None)
            if callable(remove):  # forgotten on close: the source must not keep dead mailboxes
                self._unsubscribe = lambda: remove(ended)

    def _forget_source(self) -> None:
        unsubscribe, self._unsubscribe = self._unsubscribe, None
        if unsubscribe is not None:
            try:
                unsubscribe()
            except Exception:  # a token source's bug must not break closing (ECO.1.2.3)
                log.exception("token source remove_on_end failed")

    def __repr__(self) -> str:
        state = "ended" if self._end_reason else "closed" if self._closed else "open"
        return f"{type(self).__name__}({self.address!r}, {self.kind}, {state})"

    # -- events and traces ----------------------------------------------------------------------
    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(event)`` on each :class:`MailboxEvent` (exceptions are logged, ECO.1.2.3).

        Raises:
            Nothing.
        """
        self._listeners.append(listener)

    def _emit(self, kind: Literal["connected", "disconnected", "ended", "closed"], detail: str = "",
              error: BaseException | None = None) -> None:
        event = MailboxEvent(address=self.address, kind=kind, detail=detail, error=error)
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:  # a listener's bug must not break the mail flow (ECO.1.2.3)
                log.exception("mailbox listener failed")

    @property
    def token_source(self) -> TokenSource | None:
        """The PSC token source of a PER/ORG BAL, None for an APP BAL.

        Raises:
            Nothing.
        """
        return self._creds.token_source

    @property
    def author(self) -> str:
        """The identity written in traces (ECO.4.1.1).

        Raises:
            Nothing.
        """
        return self.options.author or self._creds.author()

    def _trace(self, action: Action, request: str, response: str, ok: bool) -> None:
        if self._traces is None:
            return
        try:
            self._traces.emit(
                make_record(author=self.author, bal=self.address, action=action, request=request,
                            response=response, ok=ok)
            )
        except Exception:  # ECO.1.2.3: a trace sink failure never breaks the action
            log.exception("trace sink failed")

    # -- lifecycle ------------------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        """True after :meth:`aclose` or the end of the PSC session.

        Raises:
            Nothing.
        """
        return self._closed

    def is_closed(self) -> bool:
        """Same as :attr:`closed` (a call, so that type checkers re-read it after an await).

        Raises:
            Nothing.
        """
        return self._closed

    @property
    def end_reason(self) -> str | None:
        """Why the PSC session ended, or None.

        Raises:
            Nothing.
        """
        return self._end_reason

    def _check_open(self) -> None:
        if self._end_reason is not None:
            raise PSCError(
                f"{self.address}: {self._end_reason}; every session was closed (sign in with PSC again)",
                oauth_error="invalid_grant",
                requirement="ECO.1.2.6",
            )
        if self._closed:
            raise UsageError(f"{self.address}: the mailbox is closed")

    def _note(self, exc: BaseException) -> None:
        """React to an error: ``invalid_grant`` from the token source ends every session (ECO.1.2.6)."""
        if isinstance(exc, PSCError) and exc.oauth_error == "invalid_grant":
            self.end(f"the PSC session is over ({exc.message})")

    def end(self, reason: str) -> None:
        """Close every session of this BAL now, because its PSC session is over (ECO.1.2.6).

        Synchronous: sockets are aborted at once; later calls raise :class:`PSCError`
        (``invalid_grant``) and :meth:`watch` iterations stop with it. Idempotent, and a no-op
        once the mailbox is closed (:meth:`aclose`): a closed mailbox has no session to end.

        Raises:
            Nothing.
        """
        if self._end_reason is not None or self._closed:
            return
        self._end_reason = reason
        self._closed = True
        for conn in list(self._live):
            conn.abort()
        self._live.clear()
        self._imap = self._smtp = None
        self._forget_source()
        self.ended.set()
        self._trace("disconnect", "end of the PSC session", reason, True)
        self._emit("ended", reason)

    async def aclose(self) -> None:
        """LOGOUT / QUIT every session (bounded), then close. Idempotent.

        Raises:
            Nothing.
        """
        self._forget_source()
        if self._closed and not self._live:
            return
        self._closed = True
        live, self._live = list(self._live), set()
        self._imap = self._smtp = None
        await asyncio.gather(*(c.logout(grace=1.0) if isinstance(c, IMAPConnection) else c.quit(grace=1.0)
                               for c in live), return_exceptions=True)
        self._trace("logout", "close every session", "closed", True)
        self._emit("closed")

    # -- servers --------------------------------------------------------------------------------
    def _tls(self) -> TLSClient:
        if self._tls_client is None:
            self._tls_client = TLSClient.build(self._trust, self._creds.certificate)
        return self._tls_client


    # -- authenticated connections --------------------------------------------------------------
    async def _authenticated(
        self, service: Service, open_one: Callable[[Endpoint, ClientMechanism, ConnectionSettings], Awaitable[T]]
    ) -> T:
        """Open and authenticate a connection under the ref2 §2.4 rules, tracing each attempt."""

        async def attempt(mechanism: ClientMechanism) -> T:
            async def connect(endpoint: Endpoint) -> T:
                request = f"AUTHENTICATE {mechanism.name} ({service.value} {endpoint.host}:{endpoint.port})"
                try:
                    result = await self._where.each_address(endpoint, lambda s: open_one(endpoint, mechanism, s))
                except MssanteError as exc:
                    self._trace("authenticate", request, str(exc), False)
                    raise
                self._trace("authenticate", request, "OK", True)
                return result

            return await self._where.first_reachable(service, connect)

        self._check_open()
        try:
            result = await with_auth_retry(self._creds, attempt, backoff=self.options.backoff,
                                           sleep=self.options.clock.sleep)
        except MssanteError as exc:
            self._note(exc)
            raise
        if self._closed:  # ended while we were connecting
            conn = result
            if isinstance(conn, IMAPConnection | SMTPSubmission):
                conn.abort()
            self._check_open()
        return result

    async def open_imap(self) -> IMAPConnection:
        """A new authenticated IMAP connection, owned by this mailbox until closed.

        Raises:
            MssanteError: see :meth:`Mailbox.list` (transport, trust, authentication, PSC).
        """
        async def open_one(endpoint: Endpoint, mechanism: ClientMechanism,
                           settings: ConnectionSettings) -> IMAPConnection:
            conn = await IMAPConnection.open(endpoint.host, endpoint.port, tls=self._tls(), settings=settings,
                                             server_name=endpoint.tls_server_name)
            try:
                await conn.authenticate(mechanism)
            except BaseException:
                conn.abort()
                raise
            return conn

        conn = await self._authenticated(Service.IMAP, open_one)
        self._live.add(conn)
        self._emit("connected", f"imap {conn.server_name}")
        return conn

    def release(self, conn: IMAPConnection | SMTPSubmission) -> None:
        """Forget a connection that was closed.

        Raises:
            Nothing.
        """
        self._live.discard(conn)

    @contextlib.asynccontextmanager
    async def imap_session(self) -> AsyncIterator[IMAPConnection]:
        """The shared IMAP command connection, (re)opened as needed, one user at a time.

        Raises:
            MssanteError: see :meth:`open_imap`.
        """
        async with self._imap_lock:
            self._check_open()
            if self._imap is None or not self._imap.usable:
                if self._imap is not None:
                    self.release(self._imap)
                    self._emit("disconnected", "imap command connection lost")
                self._imap = await self.open_imap()
                self._on_new_imap()
            yield self._imap

    def _on_new_imap(self) -> None:
        """Hook: the command connection was (re)opened (selected mailbox forgotten)."""

    async def smtp_session(self, *, reconnect: bool = False) -> SMTPSubmission:
        """The shared submission connection, (re)opened as needed.

        Raises:
            MssanteError: see :meth:`Mailbox.send`.
        """
        self._check_open()
        if reconnect and self._smtp is not None:
            self._smtp.abort()
            self.release(self._smtp)
            self._smtp = None
        if self._smtp is None or not self._smtp.usable:
            async def open_one(endpoint: Endpoint, mechanism: ClientMechanism,
                               settings: ConnectionSettings) -> SMTPSubmission:
                return await SMTPSubmission.open(endpoint.host, endpoint.port, tls=self._tls(), settings=settings,
                                                 mechanism=mechanism, server_name=endpoint.tls_server_name)

            self._smtp = await self._authenticated(Service.SUBMISSION, open_one)
            self._live.add(self._smtp)
            self._emit("connected", f"submission {self._smtp.server_name}")
        return self._smtp

    async def imap_call(self, action: Action, request: str, fn: Callable[[IMAPConnection], Awaitable[T]]) -> T:
        """Run ``fn`` on the command connection, traced; reopen once if the connection was lost.

        Raises:
            MssanteError: what ``fn`` or the connection raised.
        """
        for attempt in (0, 1):
            try:
                async with self.imap_session() as conn:
                    result = await fn(conn)
                    tagged = conn.last_tagged
            except (ConnectionClosed, TransportError) as exc:
                if attempt == 0 and not self._closed:
                    continue  # the server dropped an idle connection: reopen and replay once
                self._trace(action, request, str(exc), False)
                raise
            except MssanteError as exc:
                self._trace(action, request, str(exc), False)
                raise
            response = f"{tagged.status} {tagged.text}" if tagged is not None else "OK"
            self._trace(action, request, response, True)
            return result
        raise AssertionError("unreachable")  # pragma: no cover
