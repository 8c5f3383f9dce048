"""The sandbox operator's IMAP fronts (EX_LPS_0300): ``imap.psc`` and ``imap.authcli``.

Both fronts run the sandbox's own IMAP engine (:mod:`mssante.sandbox.imapd`, over the shared
:class:`~mssante.sandbox.fronts.store.MailStore`) on an asyncio server whose connections are
:class:`~mssante.sandbox.fronts.imap_io.Channel` (TCP, then TLS on memory BIOs after STARTTLS):

* **PSC front** (``front="psc"``, BAL PER/ORG): STARTTLS, then SASL ``XOAUTH2`` or
  ``OAUTHBEARER`` with a Pro Santé Connect access token (ECO.1.2.1). ``LOGIN`` and ``PLAIN``
  are not offered (``LOGINDISABLED``).
* **AUTH_CLI front** (``front="authcli"``, BAL APP): STARTTLS presenting an IGC Santé ORG
  AUTH_CLI certificate (the server context should use ``CERT_OPTIONAL`` with the ORG CA
  loaded), then SASL ``PLAIN`` (or ``LOGIN``) whose authentication id is the BAL address; the
  password is ignored.

On both, ``AUTHENTICATE``/``LOGIN`` before STARTTLS is refused with ``NO [PRIVACYREQUIRED]``,
even from loopback. The mailbox service is IMAP4rev1 with IDLE, NAMESPACE, UNSELECT, UIDPLUS,
MOVE, LITERAL+, SASL-IR, BINARY, CHILDREN and SPECIAL-USE (INBOX, Sent, Drafts, Trash); its
answers are checked against Dovecot's by ``tests/interop/test_imap_differential.py``.

Example::

    front = IMAPFront(config, decider, journal, faults, store, ctx, front="psc")
    port = await front.start("127.0.0.1", 0)
    ...
    await front.aclose()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from typing import Final

from mssante.errors import UsageError
from mssante.sandbox.config import SandboxConfig
from mssante.sandbox.fronts.authz import AccessDecider, FrontKind
from mssante.sandbox.fronts.faults import Faults
from mssante.sandbox.fronts.imap_conn import FrontConnection, FrontContext
from mssante.sandbox.fronts.imap_io import Channel
from mssante.sandbox.fronts.journal import Journal
from mssante.sandbox.fronts.store import MailStore

__all__ = ["DEFAULT_MAX_LINE", "IMAPFront"]

_log = logging.getLogger(__name__)

#: Longest command line (without literals) accepted by default: room for a 16 KB token in SASL-IR.
DEFAULT_MAX_LINE: Final = 64 * 1024
_BAD_COMMAND_LIMIT: Final = 10


class IMAPFront:
    """One IMAP front of the sandbox operator, serving the shared mailbox store."""

    def __init__(
        self,
        config: SandboxConfig,
        decider: AccessDecider,
        journal: Journal,
        faults: Faults,
        store: MailStore,
        ssl_context: ssl.SSLContext,
        *,
        front: FrontKind = "psc",
        max_literal: int | None = None,
        max_line: int = DEFAULT_MAX_LINE,
        preauth_timeout: float = 60.0,
        autologout: float = 1800.0,
    ) -> None:
        """Prepare the front; nothing listens before :meth:`start`.

        ``ssl_context`` is the STARTTLS server context; its minimum version is raised to TLS 1.2
        if lower (ECO.1.1.1). ``max_literal`` caps every IMAP literal and APPEND (default: the
        store's ``max_message``, 50 MB); ``max_line`` caps a command line. A client silent for
        ``preauth_timeout`` seconds before authentication, or ``autologout`` seconds after
        (RFC 3501 §5.4: at least 30 minutes), gets ``* BYE`` and is disconnected.

        Raises:
            UsageError: unknown ``front``, a client-side context, or non-positive limits.
        """
        if front not in ("psc", "authcli"):
            raise UsageError(f"front must be 'psc' or 'authcli', not {front!r}")
        if not ssl_context.protocol == ssl.PROTOCOL_TLS_SERVER:
            raise UsageError("the IMAP front needs a server-side SSL context (PROTOCOL_TLS_SERVER)")
        max_literal = store.max_message if max_literal is None else max_literal
        if max_literal <= 0 or max_line < 1024:
            raise UsageError("max_literal must be > 0 and max_line >= 1024")
        if preauth_timeout <= 0 or autologout <= 0:
            raise UsageError("timeouts must be > 0")
        if ssl_context.minimum_version < ssl.TLSVersion.TLSv1_2:
            ssl_context.minimum_version = ssl.TLSVersion.TLSv1_2
        self.config = config
        self.front: FrontKind = front
        self._max_line = max_line
        self._ctx = FrontContext(
            front=front, decider=decider, journal=journal, faults=faults, store=store, ssl_context=ssl_context,
            max_literal=max_literal, max_line=max_line, bad_command_limit=_BAD_COMMAND_LIMIT,
            preauth_timeout=preauth_timeout, autologout=autologout,
        )
        self._server: asyncio.Server | None = None
        self._connections: dict[asyncio.Task[None], FrontConnection] = {}
        self._port: int | None = None

    @property
    def port(self) -> int:
        """The bound TCP port.

        Raises:
            UsageError: the front is not started.
        """
        if self._port is None:
            raise UsageError("the IMAP front is not started")
        return self._port

    @property
    def connection_count(self) -> int:
        """How many clients are connected now (never raises)."""
        return len(self._connections)

    async def start(self, host: str = "127.0.0.1", port: int = 0, *, sock: socket.socket | None = None) -> int:
        """Listen on ``host:port`` (0 = a free port) or on the pre-bound ``sock``; return the port.

        The store's folders are created first (:meth:`MailStore.start`).

        Raises:
            UsageError: already started.
            OSError: the address cannot be bound.
        """
        if self._server is not None:
            raise UsageError("the IMAP front is already started")
        await self._ctx.store.start()
        loop = asyncio.get_running_loop()

        def factory() -> Channel:
            return Channel(self._max_line, on_connect=lambda channel: loop.create_task(self._handle(channel)))

        if sock is not None:
            server = await loop.create_server(factory, sock=sock)
        else:
            server = await loop.create_server(factory, host=host, port=port)
        self._server = server
        self._port = int(server.sockets[0].getsockname()[1])
        _log.info("IMAP %s front listening on %s:%d", self.front, host, self._port)
        return self._port

    async def _handle(self, channel: Channel) -> None:
        task = asyncio.current_task()
        assert task is not None
        try:
            conn = FrontConnection(self._ctx, channel)
        except Exception:  # never let a traceback reach asyncio's server
            _log.exception("IMAP %s front: cannot set up a connection", self.front)
            channel.abort()
            return
        self._connections[task] = conn
        try:
            await conn.serve()
        except asyncio.CancelledError:
            raise
        except Exception:
            _log.exception("IMAP %s front: connection failed", self.front)
        finally:
            self._connections.pop(task, None)

    async def aclose(self) -> None:
        """Stop listening, send ``* BYE [UNAVAILABLE]`` to connected clients and close them.

        Never raises.
        """
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for conn in list(self._connections.values()):
            with contextlib.suppress(Exception):
                await conn.end("bye", b"Server shutting down.")
        tasks = list(self._connections)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=2)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=2)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 2)
        self._port = None

    async def __aenter__(self) -> IMAPFront:
        """Return the front (start it explicitly with :meth:`start`); never raises."""
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Close the front (:meth:`aclose`); never raises."""
        await self.aclose()
