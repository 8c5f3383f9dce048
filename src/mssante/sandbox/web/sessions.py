"""Webmail sessions: a random id in an HttpOnly cookie, everything else in server memory.

The cookie (``MSS_WEBMAIL``, ``SameSite=Lax``, ``HttpOnly``, path ``/``) holds only a random
session id (256 bits); the BALs the user may open, the Pro Santé Connect tokens and the CSRF
token stay in this process and die with it. A pending PSC login (state, nonce, PKCE verifier)
is kept the same way, under its own short-lived cookie, until the callback.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from mssante.psc import AuthorizationRequest, TokenSet

__all__ = ["LOGIN_COOKIE", "SESSION_COOKIE", "PendingLogin", "SessionStore", "WebSession"]

SESSION_COOKIE: Final = "MSS_WEBMAIL"
LOGIN_COOKIE: Final = "MSS_WEBMAIL_LOGIN"
#: A webmail session ends after this many seconds without a request ...
IDLE_TIMEOUT: Final = 30 * 60.0
#: ... and after this many seconds in any case (PSC's own SSO maximum is 4 h).
MAX_AGE: Final = 4 * 3600.0
#: A login started at PSC must come back within this many seconds (the PSC client allows 600).
LOGIN_TIMEOUT: Final = 600.0
_MAX_SESSIONS: Final = 1000


@dataclass(kw_only=True)
class WebSession:
    """One logged-in browser.

    Attributes:
        bals: the BAL addresses this user may open (lower case), in display order.
        who: a display name (``Marie CURIE`` or ``Application (certificat de la structure)``).
        method: ``psc`` or ``app``.
        national_id: the professional's idNat_PS for a PSC login.
        tokens: the PSC token set (never sent to the browser).
        csrf: the token every form and htmx request must echo.
    """

    id: str
    bals: list[str]
    who: str
    method: str
    national_id: str | None = None
    tokens: TokenSet | None = field(default=None, repr=False)
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32), repr=False)
    created: float = field(default_factory=time.monotonic)
    seen: float = field(default_factory=time.monotonic)

    def may_open(self, address: str) -> bool:
        """Whether ``address`` is one of this session's BALs (case-insensitive)."""
        return address.lower() in self.bals


@dataclass(kw_only=True)
class PendingLogin:
    """A PSC authorization in progress for one browser."""

    request: AuthorizationRequest = field(repr=False)
    created: float = field(default_factory=time.monotonic)


class SessionStore:
    """In-memory sessions and pending logins, with idle and absolute expiry."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        """Start empty."""
        self._clock = clock
        self._sessions: dict[str, WebSession] = {}
        self._pending: dict[str, PendingLogin] = {}

    def create(self, *, bals: list[str], who: str, method: str, national_id: str | None = None,
               tokens: TokenSet | None = None) -> WebSession:
        """Open a session; the oldest one goes when the store is full."""
        self._expire()
        while len(self._sessions) >= _MAX_SESSIONS:
            self._sessions.pop(next(iter(self._sessions)))
        now = self._clock()
        session = WebSession(id=secrets.token_urlsafe(32), bals=[b.lower() for b in bals], who=who, method=method,
                             national_id=national_id, tokens=tokens, created=now, seen=now)
        self._sessions[session.id] = session
        return session

    def get(self, session_id: str | None) -> WebSession | None:
        """The live session with this id, touched; None when unknown or expired."""
        if not session_id:
            return None
        session = self._sessions.get(session_id)
        if session is None:
            return None
        now = self._clock()
        if now - session.seen > IDLE_TIMEOUT or now - session.created > MAX_AGE:
            self._sessions.pop(session_id, None)
            return None
        session.seen = now
        return session

    def end(self, session_id: str | None) -> WebSession | None:
        """Forget a session (logout); return it if it existed."""
        return self._sessions.pop(session_id or "", None)

    def start_login(self, request: AuthorizationRequest) -> str:
        """Keep a pending PSC authorization; return the id to put in the login cookie."""
        self._expire()
        login_id = secrets.token_urlsafe(32)
        self._pending[login_id] = PendingLogin(request=request, created=self._clock())
        return login_id

    def take_login(self, login_id: str | None) -> PendingLogin | None:
        """Remove and return a pending login (one use); None when unknown or too old."""
        pending = self._pending.pop(login_id or "", None)
        if pending is None or self._clock() - pending.created > LOGIN_TIMEOUT:
            return None
        return pending

    def _expire(self) -> None:
        now = self._clock()
        for key, s in list(self._sessions.items()):
            if now - s.seen > IDLE_TIMEOUT or now - s.created > MAX_AGE:
                del self._sessions[key]
        for key, p in list(self._pending.items()):
            if now - p.created > LOGIN_TIMEOUT:
                del self._pending[key]
