"""In-memory state of the mock PSC: SSO sessions, grants, codes, refresh tokens, CIBA requests.

Vocabulary:

* an **SSO session** is one authentication of a professional (CPS card or e-CPS); its id is
  both ``session_state`` and ``sid`` in tokens (psc-igc.md §1.5). It lives at most
  ``sso_max`` after login and dies after ``sso_idle`` without login or refresh (psc-igc.md
  §1.5, ANS-IG: 4 h absolute, 30 min inactivity).
* a **grant** is one client's share of a session, born from an authorization code or a CIBA
  approval; refresh rotation stays inside it. Revoking a grant kills every access and
  refresh token it produced (RFC 6749 §4.1.2 code replay, RFC 7009 §2.1, RFC 9700 §4.14.2).

Everything is guarded by one lock so the in-process API may be called from other threads.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field

from mssante.clock import Clock
from mssante.sandbox.config import Lifetimes, Professional

#: Seconds between purges of long-dead sessions and tokens (every lookup checks expiry itself).
PURGE_INTERVAL = 30.0

__all__ = ["AuthCode", "CibaRequest", "Grant", "RefreshToken", "SSOSession", "Store"]


def new_id() -> str:
    """Return a fresh unguessable identifier (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


@dataclass(eq=False)
class SSOSession:
    """One authentication of a professional at the mock PSC."""

    sid: str
    professional: Professional
    auth_time: float
    last_active: float
    auth_mode: str
    clients: set[str] = field(default_factory=set)
    ended: bool = False


@dataclass(eq=False)
class Grant:
    """One client's authorization inside a session (a refresh-token family)."""

    id: str
    sid: str
    client_id: str
    scope: str
    nonce: str
    revoked: bool = False


@dataclass(eq=False)
class AuthCode:
    """An authorization code (RFC 6749 §4.1.2), single use, bound to client and redirect URI."""

    code: str
    client_id: str
    redirect_uri: str
    scope: str
    nonce: str
    code_challenge: str
    code_challenge_method: str
    sid: str
    expires_at: float
    grant_id: str | None = None
    used: bool = False

    # Authlib's AuthorizationCodeMixin / CodeChallenge interface.
    def get_redirect_uri(self) -> str:
        """Return the redirect URI of the authorization request."""
        return self.redirect_uri

    def get_scope(self) -> str:
        """Return the granted scope."""
        return self.scope


@dataclass(eq=False)
class RefreshToken:
    """An opaque refresh token; ``used`` once rotated (refresh token rotation)."""

    value: str
    grant_id: str
    client_id: str
    scope: str
    issued_at: float
    expires_at: float
    used: bool = False
    revoked: bool = False

    # Authlib's TokenMixin interface.
    def check_client(self, client: object) -> bool:
        """Tell whether ``client`` is the one the token was issued to."""
        return getattr(client, "client_id", None) == self.client_id

    def get_scope(self) -> str:
        """Return the granted scope."""
        return self.scope


@dataclass(eq=False)
class CibaRequest:
    """A backchannel authentication request in poll mode (CIBA Core §7, §10)."""

    auth_req_id: str
    client_id: str
    professional: Professional
    scope: str
    channel: str
    created_at: float
    expires_at: float
    interval: float
    last_poll: float | None = None
    redeemed: bool = False


@dataclass
class _AccessRecord:
    grant_id: str
    expires_at: float
    revoked: bool = False


class Store:
    """The mutable state of one mock PSC, with liveness rules driven by ``clock``."""

    def __init__(self, lifetimes: Lifetimes, clock: Clock) -> None:
        self.lifetimes = lifetimes
        self.clock = clock
        self.lock = threading.RLock()
        self.sessions: dict[str, SSOSession] = {}
        self.cookies: dict[str, str] = {}  # browser cookie value -> sid
        self.grants: dict[str, Grant] = {}
        self.codes: dict[str, AuthCode] = {}
        self.refresh_tokens: dict[str, RefreshToken] = {}
        self.access_tokens: dict[str, _AccessRecord] = {}  # jti -> record
        self.ciba: dict[str, CibaRequest] = {}
        self._next_purge = 0.0

    # -- sessions -------------------------------------------------------------------------
    def new_session(self, professional: Professional, auth_mode: str) -> SSOSession:
        """Open an SSO session for ``professional`` now."""
        now = self.clock()
        with self.lock:
            if now >= self._next_purge:  # each purge scans everything: not at every login (10,000 logins)
                self._purge(now)
                self._next_purge = now + PURGE_INTERVAL
            session = SSOSession(
                sid=new_id(), professional=professional, auth_time=now, last_active=now, auth_mode=auth_mode
            )
            self.sessions[session.sid] = session
            return session

    def session_deadline(self, session: SSOSession) -> float:
        """Return the instant the session dies if nothing happens (min of max and idle)."""
        lt = self.lifetimes
        return min(session.auth_time + lt.sso_max, session.last_active + lt.sso_idle)

    def live_session(self, sid: str) -> SSOSession | None:
        """Return the session if it exists, was not ended and is within sso_max and sso_idle."""
        with self.lock:
            session = self.sessions.get(sid)
            if session is None or session.ended or self.clock() >= self.session_deadline(session):
                return None
            return session

    def end_session(self, sid: str) -> SSOSession | None:
        """Mark a session ended (logout) and revoke its grants; return it if it was alive."""
        with self.lock:
            session = self.sessions.get(sid)
            if session is None or session.ended:
                return None
            session.ended = True
            for grant in self.grants.values():
                if grant.sid == sid:
                    grant.revoked = True
            for cookie, cookie_sid in list(self.cookies.items()):
                if cookie_sid == sid:
                    del self.cookies[cookie]
            return session

    # -- grants and tokens ----------------------------------------------------------------
    def new_grant(self, session: SSOSession, client_id: str, scope: str, nonce: str) -> Grant:
        """Create a token family for ``client_id`` inside ``session``."""
        with self.lock:
            grant = Grant(id=new_id(), sid=session.sid, client_id=client_id, scope=scope, nonce=nonce)
            self.grants[grant.id] = grant
            session.clients.add(client_id)
            return grant

    def live_grant(self, grant_id: str) -> tuple[Grant, SSOSession] | None:
        """Return the grant and its session if both are still valid."""
        with self.lock:
            grant = self.grants.get(grant_id)
            if grant is None or grant.revoked:
                return None
            session = self.live_session(grant.sid)
            return None if session is None else (grant, session)

    def revoke_grant(self, grant_id: str) -> None:
        """Revoke a token family: every access and refresh token of the grant dies."""
        with self.lock:
            grant = self.grants.get(grant_id)
            if grant is not None:
                grant.revoked = True

    def record_access_token(self, jti: str, grant_id: str, expires_at: float) -> None:
        """Remember an issued access token so it can be revoked and introspected."""
        with self.lock:
            self.access_tokens[jti] = _AccessRecord(grant_id=grant_id, expires_at=expires_at)

    def access_token_problem(self, jti: str) -> str | None:
        """Return why the access token ``jti`` is unusable (unknown, revoked, expired, session ended), or None."""
        with self.lock:
            record = self.access_tokens.get(jti)
            if record is None:
                return "was not issued here"
            if record.revoked:
                return "was revoked"
            if self.clock() >= record.expires_at:
                return "is expired"
            if self.live_grant(record.grant_id) is None:
                return "belongs to an ended session or a revoked grant"
            return None

    def revoke_access_token(self, jti: str) -> None:
        """Revoke one access token (RFC 7009)."""
        with self.lock:
            record = self.access_tokens.get(jti)
            if record is not None:
                record.revoked = True

    def new_refresh_token(self, grant: Grant, session: SSOSession) -> RefreshToken:
        """Issue a refresh token bounded by its own lifetime and the session deadlines."""
        now = self.clock()
        with self.lock:
            expires_at = min(now + self.lifetimes.refresh_token, self.session_deadline(session))
            token = RefreshToken(
                value=new_id(), grant_id=grant.id, client_id=grant.client_id, scope=grant.scope,
                issued_at=now, expires_at=expires_at,
            )
            self.refresh_tokens[token.value] = token
            return token

    def live_refresh_token(self, value: str) -> RefreshToken | None:
        """Return the refresh token if usable now (not used, revoked, expired, or logged out)."""
        with self.lock:
            token = self.refresh_tokens.get(value)
            if token is None or token.used or token.revoked or self.clock() >= token.expires_at:
                return None
            return token if self.live_grant(token.grant_id) is not None else None

    def touch(self, session: SSOSession) -> None:
        """Record activity: a refresh extends the idle window (Keycloak SSO idle semantics)."""
        with self.lock:
            session.last_active = self.clock()

    # -- housekeeping ---------------------------------------------------------------------
    def _purge(self, now: float) -> None:
        horizon = now - self.lifetimes.sso_max - 60
        for sid, session in list(self.sessions.items()):
            if session.auth_time < horizon:
                del self.sessions[sid]
        for grant_id, grant in list(self.grants.items()):
            if grant.sid not in self.sessions:
                del self.grants[grant_id]
        for code, item in list(self.codes.items()):
            if item.expires_at < now - 60:
                del self.codes[code]
        for value, rt in list(self.refresh_tokens.items()):
            if rt.expires_at < now - 60 and (rt.used or rt.revoked or rt.expires_at < horizon):
                del self.refresh_tokens[value]
        for jti, at in list(self.access_tokens.items()):
            if at.expires_at < now - 60:
                del self.access_tokens[jti]
        for req_id, req in list(self.ciba.items()):
            if req.expires_at < now - 60:
                del self.ciba[req_id]
