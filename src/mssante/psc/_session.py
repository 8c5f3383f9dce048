"""``PSCSession``: one professional's PSC session, a :class:`~mssante.credentials.TokenSource`.

* ECO.1.2.5: tokens live in this object's memory only, and are dropped when the session ends.
* Access tokens are refreshed ahead of expiry, one refresh at a time whatever the number of
  callers (single flight); each refresh keeps the newest refresh token (rotation, RFC 9700 §4.14.2).
* ECO.1.2.6: when the refresh token is refused (``invalid_grant``), has expired, or PSC says
  the session is over (logout), the session *ends*: :attr:`PSCSession.ended` is set, the
  ``on_end`` callbacks run, and the supervisor closes the IMAP/SMTP connections of that BAL.
* ECO.1.2.7: a network failure does not end the session (:class:`~mssante.errors.AuthUnavailable`);
  the caller retries later while the PSC session is still valid.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from mssante._end_callbacks import EndCallbacks
from mssante.clock import SYSTEM_CLOCK, Clock
from mssante.errors import AuthUnavailable, PSCError, TransportError
from mssante.psc._models import TokenSet
from mssante.secret import Secret

__all__ = ["EndCallback", "PSCSession"]

log = logging.getLogger("mssante.psc")

EndCallback = Callable[["PSCSession"], Awaitable[None] | None]


class _Owner(Protocol):
    async def refresh(self, tokens: TokenSet) -> TokenSet: ...

    def _session_ended(self, session: PSCSession) -> None: ...


class PSCSession:
    """A professional's PSC session: cached access token, refresh ahead of expiry, end signal.

    Made by :meth:`PSCClient.open_session`. Implements the ``TokenSource`` protocol.

    Attributes:
        sid: PSC's session id (``session_state`` / ``sid``), or None.
        subject: the ID token's ``sub``, or None.
        national_id: the professional's national id (``SubjectNameID``), or None.
        end_reason: why the session ended (``invalid_grant``, ``refresh_expired``, ``logout``,
            ``backchannel_logout``, or what :meth:`end` was given); None while alive.
    """

    def __init__(self, owner: _Owner, tokens: TokenSet, *, margin: float,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        """Wrap ``tokens``; refresh ``margin`` seconds before the access token expires."""
        self._owner = owner
        self._margin = margin
        self._clock = clock
        self._lock = asyncio.Lock()
        self._generation = 0
        self._ended = asyncio.Event()
        self._callbacks: EndCallbacks[PSCSession] = EndCallbacks(log, "PSC session")
        self._timer: asyncio.Task[None] | None = None
        self._tokens: TokenSet | None = None
        self._obtained_at = 0.0
        self.sid = tokens.session_state
        self.subject = tokens.subject
        self.national_id = tokens.national_id
        self.end_reason: str | None = None
        self._store(tokens)

    def __repr__(self) -> str:
        state = f"ended={self.end_reason!r}" if self.end_reason else "alive"
        return f"PSCSession({state}, refreshes={self._generation})"

    # -- state ---------------------------------------------------------------------------------
    @property
    def ended(self) -> asyncio.Event:
        """Set once the session is over (ECO.1.2.6)."""
        return self._ended

    @property
    def tokens(self) -> TokenSet | None:
        """The current token set, or None once ended (tokens are then forgotten, ECO.1.2.5)."""
        return self._tokens

    async def wait_ended(self) -> str:
        """Wait until the session ends; return :attr:`end_reason`."""
        await self._ended.wait()
        return self.end_reason or "ended"

    def on_end(self, callback: EndCallback) -> None:
        """Call ``callback(session)`` when the session ends (at once if it already has).

        Coroutine callbacks are run as tasks. A failing callback is logged, never raised.
        """
        self._callbacks.add(callback, self, ended=self._ended.is_set())

    def end(self, reason: str = "closed") -> None:
        """End the session locally: forget the tokens, set :attr:`ended`, run the callbacks.

        Idempotent. This does not tell PSC; use :meth:`PSCClient.logout` for that.
        """
        if self._ended.is_set():
            return
        self.end_reason = reason
        self._tokens = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._ended.set()
        log.info("PSC session ended (%s)", reason)
        self._owner._session_ended(self)
        self._callbacks.fire(self)

    def remove_on_end(self, callback: EndCallback) -> None:
        """Forget ``callback`` (given to :meth:`on_end`); nothing happens if it is not registered.

        A mailbox calls it when it is closed, so that a long-lived session keeps no closed mailbox.
        """
        self._callbacks.remove(callback)

    # -- tokens --------------------------------------------------------------------------------
    def _store(self, tokens: TokenSet) -> None:
        self._tokens = tokens
        self._obtained_at = self._clock()
        self._generation += 1
        self._schedule_expiry(tokens)

    def _schedule_expiry(self, tokens: TokenSet) -> None:
        """End the session when its refresh token expires, even if nobody asks for a token.

        Background activity must not keep a PSC session alive artificially (ref2-requirements
        §4); when the refresh token expires the PSC session is over for us (ECO.1.2.6).
        """
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if tokens.refresh_expires_at is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop yet: the check in token() still applies
        self._timer = loop.create_task(self._expire_at(tokens.refresh_expires_at), name="psc-session-expiry")

    async def _expire_at(self, deadline: float) -> None:
        # The delay is measured when the task runs, not when it was scheduled: a deadline.
        await self._clock.sleep(deadline - self._clock())
        self._timer = None
        self.end("refresh_expired")

    def _fresh_enough(self, tokens: TokenSet) -> bool:
        lifetime = max(0.0, tokens.expires_at - self._obtained_at)
        margin = min(self._margin, lifetime / 2)  # short lifetimes: do not refresh on every call
        return self._clock() < tokens.expires_at - margin

    def _over(self) -> PSCError:
        return PSCError(f"the PSC session is over ({self.end_reason})", oauth_error="invalid_grant",
                        requirement="ECO.1.2.6")

    def _live(self) -> TokenSet:
        if self._tokens is None:
            raise self._over()
        return self._tokens

    async def token(self, *, fresh: bool = False) -> Secret:
        """Return a valid access token, refreshing it when within the margin of expiry.

        Concurrent callers share one refresh. With ``fresh`` the cached token is not reused
        (after ``[AUTHENTICATIONFAILED]``), unless another caller refreshed meanwhile.

        Raises:
            PSCError: ``oauth_error="invalid_grant"``: the PSC session is over (refresh refused
                or expired, logout); :attr:`ended` is then set (ECO.1.2.6). Other codes
                (``invalid_client``...) are passed through and do not end the session.
            AuthUnavailable: PSC is unreachable or answered 5xx; the session stays alive (ECO.1.2.7).
            TrustError: PSC's TLS certificate did not verify.
            RemoteProtocolError: PSC's answer was malformed.
        """
        seen = self._generation
        async with self._lock:
            tokens = self._live()
            if self._generation != seen or (not fresh and self._fresh_enough(tokens)):
                return tokens.access_token
            if tokens.refresh_expires_at is not None and self._clock() >= tokens.refresh_expires_at:
                self.end("refresh_expired")
                raise self._over()
            if tokens.refresh_token is None:
                self.end("no_refresh_token")
                raise self._over()
            try:
                new = await self._owner.refresh(tokens)
            except PSCError as exc:
                if exc.oauth_error == "invalid_grant":
                    self.end("invalid_grant")
                raise
            except TransportError as exc:
                raise AuthUnavailable(f"PSC is unreachable: {exc.message}", imap_code="UNAVAILABLE") from exc
            if self._ended.is_set():  # ended (logout) while the refresh was in flight
                raise self._over()
            self._store(new)
            return new.access_token
