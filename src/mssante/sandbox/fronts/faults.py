"""Fault injection for the sandbox fronts: what a conformance case uses to test an LPS's reactions.

From Python (this module), from the CLI and from the sandbox HTTP API:

* drop or BYE a BAL's sessions now;
* make the next N authentications fail with a chosen code;
* make PSC unavailable (token checks answer ``[UNAVAILABLE]`` / ``454 4.7.0``);
* delay every response by some seconds;
* serve a bad server certificate at STARTTLS (expired, foreign CA, wrong host names, revoked,
  a chain that reuses IGC Santé's names);
* serve the TLS probe at STARTTLS (weak versions and suites only, see :mod:`.probe`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from mssante.errors import UsageError

__all__ = ["BAD_SERVER_CERTIFICATES", "AuthFailureCode", "BadServerCertificate", "Faults", "LiveSession"]

AuthFailureCode = Literal["AUTHENTICATIONFAILED", "AUTHORIZATIONFAILED", "UNAVAILABLE"]
_CODES: tuple[AuthFailureCode, ...] = ("AUTHENTICATIONFAILED", "AUTHORIZATIONFAILED", "UNAVAILABLE")
BadServerCertificate = Literal["expired", "foreign", "wrong-host", "revoked", "impostor"]
BAD_SERVER_CERTIFICATES: tuple[BadServerCertificate, ...] = ("expired", "foreign", "wrong-host", "revoked", "impostor")
#: Builds the server context for a bad certificate kind; the bool asks for client certificates.
BadContextFactory = Callable[[BadServerCertificate, bool], ssl.SSLContext]


@dataclass(eq=False)
class LiveSession:
    """A connected, authenticated session that fault injection can end.

    ``close(mode)`` is provided by the front: ``"bye"`` sends an untagged ``BYE`` (IMAP) or
    ``421 4.4.2`` (SMTP) before closing; ``"drop"`` closes the TCP connection abruptly.
    """

    bal: str
    front: str
    close: Callable[[Literal["bye", "drop"]], Awaitable[None]]


class Faults:
    """The fault switches, shared by every front of one sandbox."""

    def __init__(self) -> None:
        """Start with no fault."""
        self.psc_unavailable = False
        self.delay = 0.0
        #: Serve this bad server certificate at the next STARTTLS handshakes (None: the real one).
        self.bad_server_certificate: BadServerCertificate | None = None
        #: Set by the sandbox runner: builds (and caches) the bad-certificate contexts.
        self.bad_context_factory: BadContextFactory | None = None
        #: Set by the ``tls_probe`` fault (:mod:`mssante.sandbox.fronts.probe`): builds the weak
        #: context served at STARTTLS instead of the real one (the bool asks for client certificates).
        self.probe_context_factory: Callable[[bool], ssl.SSLContext] | None = None
        self._fail_next: list[tuple[AuthFailureCode, str | None]] = []
        self._sessions: set[LiveSession] = set()

    def set_bad_server_certificate(self, kind: BadServerCertificate | None) -> None:
        """Serve the ``kind`` bad server certificate at STARTTLS from now on (None: the real one).

        Raises:
            UsageError: unknown ``kind``.
        """
        if kind is not None and kind not in BAD_SERVER_CERTIFICATES:
            raise UsageError(f"bad_server_certificate must be one of {', '.join(BAD_SERVER_CERTIFICATES)} or null")
        self.bad_server_certificate = kind

    async def tls_context(self, default: ssl.SSLContext) -> ssl.SSLContext:
        """The context a front uses for STARTTLS: ``default``, or the bad-certificate one in force.

        The bad context asks for client certificates when ``default`` does. Certificates are
        issued on first use, off the event loop.

        Raises:
            ConfigError: the bad certificate cannot be issued or loaded.
        """
        probe = self.probe_context_factory
        if probe is not None:
            return await asyncio.to_thread(probe, default.verify_mode != ssl.CERT_NONE)
        kind, factory = self.bad_server_certificate, self.bad_context_factory
        if kind is None or factory is None:
            return default
        return await asyncio.to_thread(factory, kind, default.verify_mode != ssl.CERT_NONE)

    def fail_next_auth(
        self, count: int, code: AuthFailureCode = "AUTHENTICATIONFAILED", *, bal: str | None = None
    ) -> None:
        """Make the next ``count`` authentications (for ``bal``, or any BAL) fail with ``code``.

        Raises:
            UsageError: ``count`` is negative or ``code`` unknown.
        """
        if count < 0:
            raise UsageError("count must be >= 0")
        if code not in _CODES:
            raise UsageError(f"code must be one of {', '.join(_CODES)}")
        self._fail_next.extend([(code, bal.lower() if bal else None)] * count)

    def take_auth_failure(self, bal: str) -> AuthFailureCode | None:
        """Consume and return the injected failure for this authentication attempt, if any."""
        for i, (code, target) in enumerate(self._fail_next):
            if target is None or target == bal.lower():
                del self._fail_next[i]
                return code
        return None

    @property
    def pending_auth_failures(self) -> int:
        """How many injected authentication failures are still queued."""
        return len(self._fail_next)

    def clear(self) -> None:
        """Remove every fault (sessions stay connected)."""
        self.psc_unavailable = False
        self.delay = 0.0
        self.bad_server_certificate = None
        self.probe_context_factory = None
        self._fail_next.clear()

    async def wait_delay(self) -> None:
        """Sleep for the injected delay, if any (called by the fronts before each response)."""
        if self.delay > 0:
            await asyncio.sleep(self.delay)

    def register(self, session: LiveSession) -> None:
        """Record a live session so that :meth:`end_sessions` can reach it."""
        self._sessions.add(session)

    def unregister(self, session: LiveSession) -> None:
        """Forget a session that ended."""
        self._sessions.discard(session)

    def sessions(self, bal: str | None = None) -> list[LiveSession]:
        """The live sessions, of one BAL or of all."""
        return [s for s in self._sessions if bal is None or s.bal.lower() == bal.lower()]

    async def end_sessions(self, bal: str | None = None, mode: Literal["bye", "drop"] = "bye") -> int:
        """End the live sessions of ``bal`` (or all) now; return how many were ended.

        Raises:
            UsageError: ``mode`` is not ``"bye"`` or ``"drop"``.
        """
        if mode not in ("bye", "drop"):
            raise UsageError("mode must be 'bye' or 'drop'")
        targets = self.sessions(bal)
        for session in targets:
            self.unregister(session)
            with contextlib.suppress(Exception):
                await session.close(mode)
        return len(targets)
