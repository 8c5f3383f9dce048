"""The realm ``esante-wallet`` of the mock PSC: configuration, state and token services together.

This layer knows nothing about HTTP or Authlib; the web layer and :class:`MockPSC` use it.
"""

from __future__ import annotations

import math
from typing import Any

from joserfc.jwk import RSAKey

from mssante.clock import Clock
from mssante.errors import TokenRejected
from mssante.sandbox.config import Professional, SandboxConfig
from mssante.sandbox.psc.claims import subject
from mssante.sandbox.psc.store import CibaRequest, SSOSession, Store
from mssante.sandbox.psc.tokens import TokenIssuer

__all__ = ["REQUIRED_SCOPES", "Realm"]

#: PSC requires both (psc-igc.md §1.3: "openid scope_all" is the only supported scope value).
REQUIRED_SCOPES = ("openid", "scope_all")


class Realm:
    """State and rules of one mock PSC realm."""

    #: Scopes we implement and advertise; anything else is ``invalid_scope``.
    scopes_supported = ("openid", "scope_all", "profile")

    def __init__(self, config: SandboxConfig, *, issuer: str, key: RSAKey, clock: Clock) -> None:
        self.config = config
        self.issuer = issuer
        self.lifetimes = config.lifetimes
        self.store = Store(config.lifetimes, clock)
        self.tokens = TokenIssuer(key=key, issuer=issuer, store=self.store)

    def check_scope(self, scope: str | None) -> None:
        """Apply PSC's scope rule.

        Raises:
            ValueError: ``openid`` or ``scope_all`` is missing, or an unknown scope is asked.
        """
        scopes = (scope or "").split()
        missing = [s for s in REQUIRED_SCOPES if s not in scopes]
        if missing:
            raise ValueError(f"scope must contain {' and '.join(missing)}")
        unknown = [s for s in scopes if s not in self.scopes_supported]
        if unknown:
            raise ValueError("unsupported scope")

    def login(self, professional: Professional, auth_mode: str) -> SSOSession:
        """Open an SSO session as if ``professional`` had used a CPS (CARD) or e-CPS (MOBILE)."""
        return self.store.new_session(professional, auth_mode)

    def start_ciba(
        self, client_id: str, professional: Professional, scope: str, channel: str, auth_req_id: str
    ) -> dict[str, Any]:
        """Record a CIBA request and return the backchannel authentication response (CIBA §7.3)."""
        now = self.store.clock()
        lt = self.lifetimes
        with self.store.lock:
            self.store.ciba[auth_req_id] = CibaRequest(
                auth_req_id=auth_req_id, client_id=client_id, professional=professional, scope=scope,
                channel=channel, created_at=now, expires_at=now + lt.ciba_request, interval=lt.ciba_interval,
            )
        return {
            "auth_req_id": auth_req_id,
            "expires_in": max(1, math.ceil(lt.ciba_request)),
            "interval": max(1, math.ceil(lt.ciba_interval)),
        }

    def introspect(self, token: str) -> dict[str, Any]:
        """Return the RFC 7662 answer for an access or refresh token of this realm.

        Active access token: its claims plus ``client_id`` (= azp), ``username`` and
        ``SubjectNameID`` (psc-igc.md §1.5), ``active: true``. Anything else: ``{"active": false}``.
        """
        try:
            claims = self.tokens.validate_access_token(token)
        except TokenRejected:
            return self._introspect_refresh(token)
        username = claims.get("preferred_username")
        return {**claims, "client_id": claims.get("azp"), "username": username, "SubjectNameID": username,
                "token_type": "Bearer", "active": True}

    def _introspect_refresh(self, token: str) -> dict[str, Any]:
        rt = self.store.live_refresh_token(token)
        live = None if rt is None else self.store.live_grant(rt.grant_id)
        if rt is None or live is None:
            return {"active": False}
        session = live[1]
        pro = session.professional
        return {
            "active": True, "iss": self.issuer, "typ": "Refresh", "token_type": "Refresh",
            "client_id": rt.client_id, "azp": rt.client_id, "username": pro.national_id,
            "sub": subject(pro), "scope": rt.scope, "iat": int(rt.issued_at), "exp": int(rt.expires_at),
            "session_state": session.sid, "sid": session.sid,
        }

    def sessions_matching(self, key: str) -> list[str]:
        """Return the ids of live-or-not-yet-ended sessions whose sid or national id is ``key``."""
        with self.store.lock:
            return [
                s.sid for s in self.store.sessions.values()
                if not s.ended and key in (s.sid, s.professional.national_id)
            ]
