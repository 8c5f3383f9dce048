"""The sandbox operator's SMTP submission fronts (ECO.1.0.1), on aiosmtpd.

Two fronts, as the operator's SRV records name them (EX_LPS_0300, ref2-requirements §2, §7):

* ``front="psc"`` — BAL PER/ORG: STARTTLS, then SASL ``XOAUTH2`` or ``OAUTHBEARER`` with a
  Pro Santé Connect access token (ECO.1.2.1);
* ``front="authcli"`` — BAL APP: STARTTLS presenting an IGC Santé ORG AUTH_CLI client
  certificate (the server context must request it: ``CERT_OPTIONAL`` + the ORG CA), then
  SASL ``PLAIN`` whose authcid is the APP BAL address (the password is ignored).

Rules enforced, each with its reply (texts in :class:`~.smtp_options.Replies`):

* TLS ≥ 1.2 (ECO.1.1.1); STARTTLS before anything but EHLO/NOOP/QUIT:
  ``530 5.7.0 Must issue a STARTTLS command first`` (RFC 3207 §4); an AUTH with an initial
  response sent in clear is journaled as ``credentials_before_tls``; a new EHLO after
  STARTTLS (``503 5.5.1``, switchable);
* AUTH line ≤ 512 octets (RFC 4954 §4, like Dovecot: ``500 5.5.2 Line too long``); answers to
  ``334`` up to 64 KiB; refusals per RFC 7628 §3.2.2 and RFC 4954 §6 (see :mod:`.smtp_auth`);
* ``MAIL FROM`` = the authenticated BAL (``553 5.7.1``, RFC 6409 §6.1); ``SIZE`` advertised
  and enforced on the parameter and the data (``552 5.3.4``, RFC 1870); DSN parameters
  ``NOTIFY``/``ORCPT``/``RET``/``ENVID`` kept (RFC 3461);
* ``CHUNKING`` (RFC 3030) after STARTTLS, as Postfix ≥ 3.4: ``BDAT <size> [LAST]`` chunks held
  to the same size and line checks as DATA, a refused chunk read and dropped before its reply
  (``503`` without a transaction, ``552`` past ``SIZE``), DATA/MAIL/RCPT after BDAT ``503``
  (§3), a malformed size ``521`` and closed; no BINARYMIME. The complete message then takes
  DATA's path (see :mod:`.smtp_session`);
* recipients: BALs of the store. Unknown BAL of the sandbox domain: ``550 5.1.1`` at RCPT by
  default, or accepted and bounced with an RFC 3464 DSN (``unknown_recipients="bounce"``).
  Other domains: ``550 5.7.1 Relay access denied`` by default, or bounced (``5.4.4``);
* each delivered copy starts with a ``Received:`` line (RFC 5321 §4.4); ``NOTIFY=SUCCESS``
  gives a success DSN; no copy in the sender's Sent unless ``copy_to_sent`` (the client
  library appends to Sent itself);
* responders (:data:`~.delivery.Responder`) answer in background tasks, with the RFC 3834
  loop guard of :mod:`.smtp_dispatch`;
* journal: one record per connection (``smtp-psc`` / ``smtp-authcli``), redacted commands,
  TLS facts, and for each accepted message its envelope, size and header fields — never a
  body, never a token. Authenticated sessions are registered in :class:`Faults`.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Mapping
from dataclasses import replace

from mssante.errors import ConfigError, UsageError
from mssante.sandbox.config import SandboxConfig
from mssante.sandbox.fronts.authz import AccessDecider, FrontKind
from mssante.sandbox.fronts.delivery import MailDelivery, Responder
from mssante.sandbox.fronts.faults import Faults
from mssante.sandbox.fronts.journal import Journal
from mssante.sandbox.fronts.smtp_auth import FrontContext
from mssante.sandbox.fronts.smtp_dispatch import Dispatcher
from mssante.sandbox.fronts.smtp_options import DEFAULT_MAX_SIZE, Replies, SubmissionOptions
from mssante.sandbox.fronts.smtp_session import SubmissionSession

__all__ = ["DEFAULT_MAX_SIZE", "Replies", "SubmissionFront", "SubmissionOptions"]

_OLD_TLS = (ssl.TLSVersion.MINIMUM_SUPPORTED, ssl.TLSVersion.SSLv3, ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1)


class SubmissionFront:
    """One SMTP submission front (``psc`` or ``authcli``) of the sandbox operator.

    Example::

        front = SubmissionFront(config, decider, journal, faults, store, pki.server_ssl_context(),
                                front="psc")
        port = await front.start("127.0.0.1", 0)
        ...
        await front.aclose()
    """

    def __init__(
        self,
        config: SandboxConfig,
        decider: AccessDecider,
        journal: Journal,
        faults: Faults,
        delivery: MailDelivery,
        ssl_context: ssl.SSLContext,
        *,
        front: FrontKind,
        responders: Mapping[str, Responder] | None = None,
        max_size: int | None = None,
        options: SubmissionOptions | None = None,
    ) -> None:
        """Prepare a front; nothing listens before :meth:`start`.

        ``max_size`` overrides ``options.max_size``. A context allowing TLS < 1.2 is raised to
        TLS 1.2 (ECO.1.1.1).

        Raises:
            ConfigError: ``front`` is neither ``psc`` nor ``authcli``; the AUTH_CLI context
                does not request client certificates (``verify_mode`` is ``CERT_NONE``); or an
                invalid ``max_size``.
        """
        if front not in ("psc", "authcli"):
            raise ConfigError(f"front must be 'psc' or 'authcli', not {front!r}")
        if front == "authcli" and ssl_context.verify_mode == ssl.CERT_NONE:
            raise ConfigError("the AUTH_CLI front needs a TLS context that requests client certificates")
        if ssl_context.minimum_version in _OLD_TLS:
            ssl_context.minimum_version = ssl.TLSVersion.TLSv1_2
        options = options or SubmissionOptions()
        if max_size is not None:
            options = replace(options, max_size=max_size)
        hostname = options.hostname or config.host_name("smtp", front)
        self._dispatcher = Dispatcher(
            hostname=hostname, domain=config.domain, delivery=delivery, responders=responders or {}, options=options
        )
        self._ctx = FrontContext(
            kind=front, hostname=hostname, ssl_context=ssl_context, options=options, decider=decider,
            journal=journal, faults=faults, dispatcher=self._dispatcher,
        )
        self._server: asyncio.Server | None = None

    @property
    def options(self) -> SubmissionOptions:
        """The behaviour switches in force."""
        return self._ctx.options

    @property
    def port(self) -> int | None:
        """The bound TCP port, once started."""
        if self._server is None or not self._server.sockets:
            return None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self, host: str = "127.0.0.1", port: int = 0, *, sock: socket.socket | None = None) -> int:
        """Listen on ``host:port`` (0 = any free port), or on an already bound ``sock``.

        Returns the bound port.

        Raises:
            UsageError: the front is already started.
            ConfigError: the address cannot be bound.
        """
        if self._server is not None:
            raise UsageError("this submission front is already started")
        loop = asyncio.get_running_loop()
        try:
            if sock is not None:
                self._server = await loop.create_server(lambda: SubmissionSession(self._ctx), sock=sock)
            else:
                self._server = await loop.create_server(lambda: SubmissionSession(self._ctx), host=host, port=port)
        except OSError as exc:
            raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
        bound = self.port
        assert bound is not None
        return bound

    async def wait_idle(self, seconds: float = 10.0) -> None:
        """Wait until the responders started by delivered messages have all finished.

        Raises:
            TimeoutError: (the builtin) they still run after ``seconds``.
        """
        await self._dispatcher.wait_idle(seconds)

    async def aclose(self) -> None:
        """Stop listening, close every connection and cancel running responders. Idempotent.

        Raises:
            Nothing: errors while closing connections are ignored.
        """
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for session in list(self._ctx.sessions):
            with contextlib.suppress(Exception):
                session.abort(graceful=False)
        await self._dispatcher.aclose()
        if server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 5)
        # Let the aborted connections run their connection_lost callbacks.
        for _ in range(3):
            await asyncio.sleep(0)
