"""``MockPSC``: the whole mock Pro Santé Connect, as an ASGI app plus an in-process API."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mssante.clock import SYSTEM_CLOCK, Clock
from mssante.errors import AuthUnavailable, ConfigError, UsageError
from mssante.sandbox.config import SandboxConfig
from mssante.sandbox.psc.discovery import ENDPOINTS, discovery_document
from mssante.sandbox.psc.endpoints import RealmIntrospection, RealmRevocation
from mssante.sandbox.psc.keys import load_or_create_signing_key, public_jwks
from mssante.sandbox.psc.logout import send_backchannel_logouts
from mssante.sandbox.psc.oauth import PSCAuthorizationServer
from mssante.sandbox.psc.pages import BrowserPages
from mssante.sandbox.psc.realm import Realm
from mssante.sandbox.psc.web import PSCWebApp

__all__ = ["MockPSC"]


def _check_issuer(issuer: str) -> None:
    parts = urlsplit(issuer)
    if parts.query or parts.fragment or issuer.endswith("/") or not parts.hostname:
        raise ConfigError("issuer must be an absolute URL without query, fragment or trailing slash")
    if parts.scheme == "https":
        return
    try:
        loopback = parts.scheme == "http" and ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        loopback = False
    if not loopback:  # OAuth requires TLS except on loopback (RFC 8252 §8.3; Authlib enforces it too)
        raise ConfigError("issuer must be https, or http on a loopback IP address")


class MockPSC:
    """A local stand-in for PSC's bac à sable (realm ``esante-wallet``).

    ``app`` serves every endpoint at its full path (``/auth/realms/esante-wallet/...``), so it
    can be mounted at ``/`` beside other routes or run alone under uvicorn. The methods below
    let the sandbox's IMAP and SMTP fronts check tokens in-process.

    Attributes:
        app: the ASGI application.
        unavailable: fault switch; when true every endpoint answers 503
            ``temporarily_unavailable`` and the in-process checks raise AuthUnavailable.
    """

    def __init__(
        self,
        config: SandboxConfig,
        *,
        issuer: str,
        state_dir: Path,
        clock: Clock = SYSTEM_CLOCK,
        backchannel_timeout: float = 5.0,
    ) -> None:
        """Build the mock; the RSA key is created in (or read from) ``state_dir``.

        ``issuer`` is e.g. ``http://127.0.0.1:<port>/auth/realms/esante-wallet``: the caller
        binds the socket first so it knows the port. ``clock`` (:class:`mssante.clock.Clock`) is
        the only time the mock reads: token lifetimes, code and CIBA expiries, the CIBA approval
        delay and polling interval, SSO idle and maximum; a test gives a
        :class:`mssante.testing.FakeClock` and moves it instead of sleeping.

        Raises:
            ConfigError: the issuer is not https or loopback http, or the key cannot be stored
                or read (see :func:`load_or_create_signing_key`).
        """
        _check_issuer(issuer)
        self.unavailable = False
        self._timeout = backchannel_timeout
        self._realm = Realm(config, issuer=issuer, key=load_or_create_signing_key(state_dir), clock=clock)
        server = PSCAuthorizationServer(self._realm)
        server.register_endpoint(RealmIntrospection(server, self._realm))
        server.register_endpoint(RealmRevocation(server, self._realm))
        pages = BrowserPages(self._realm, server, self._end_sessions)
        extra = [
            (ENDPOINTS["authorization_endpoint"], pages.authorize, ["GET", "POST"]),
            (ENDPOINTS["end_session_endpoint"], pages.logout, ["GET", "POST"]),
        ]
        web = PSCWebApp(self._realm, server, is_unavailable=lambda: self.unavailable, extra_routes=extra)
        self.app = web.app
        #: The Starlette routes behind :attr:`app` (which bounds request bodies first).
        self.routes = web.starlette.routes

    @property
    def issuer(self) -> str:
        """The issuer URL given at construction."""
        return self._realm.issuer

    def jwks(self) -> dict[str, Any]:
        """Return the public JWK Set served at ``certs``."""
        return public_jwks(self._realm.tokens.key)

    def discovery(self) -> dict[str, Any]:
        """Return the discovery document served at ``.well-known/wallet-openid-configuration``."""
        return discovery_document(self._realm)

    def _check_available(self) -> None:
        if self.unavailable:
            raise AuthUnavailable("the mock PSC is switched off", imap_code="UNAVAILABLE",
                                  smtp_code=454, enhanced_code="4.7.0")

    def validate_access_token(self, token: str) -> dict[str, Any]:
        """Check an access token as a resource server validating locally would, plus session state.

        Checks: compact JWS, ``alg`` RS256 only (``none`` and HS* refused), our ``kid`` and
        key, our issuer, not expired, ``typ`` Bearer, issued here, not revoked, session alive.

        Returns:
            The token's claims.

        Raises:
            TokenRejected: with the reason as message.
            AuthUnavailable: the ``unavailable`` switch is on.
        """
        self._check_available()
        return self._realm.tokens.validate_access_token(token)

    def introspect(self, token: str) -> dict[str, Any]:
        """Return what the introspection endpoint would answer (RFC 7662 §2.2), without client auth.

        Raises:
            AuthUnavailable: the ``unavailable`` switch is on.
        """
        self._check_available()
        return self._realm.introspect(token)

    async def end_session(self, key: str) -> int:
        """End the session whose ``sid`` is ``key``, or every session of the national id ``key``.

        Back-channel logout tokens are delivered to the clients of each ended session before
        this returns. Afterwards refresh fails with ``invalid_grant`` and introspection answers
        ``{"active": false}`` for the session's tokens.

        Returns:
            The number of sessions ended (0 if none matched).

        Raises:
            Nothing: delivery failures are logged, not raised.
        """
        return await self._end_sessions(self._realm.sessions_matching(key))

    async def _end_sessions(self, sids: list[str]) -> int:
        ended = 0
        for sid in sids:
            session = self._realm.store.end_session(sid)
            if session is not None:
                ended += 1
                await send_backchannel_logouts(self._realm, session, per_request_timeout=self._timeout)
        return ended

    def logins_since(self, national_id: str, since: float) -> int:
        """How many SSO sessions (PSC logins) ``national_id`` opened at or after ``since`` (mock clock).

        The conformance suite reads it to see that an LPS keeps a session alive by refreshing its
        tokens, not by asking the professional to log in again.
        """
        store = self._realm.store
        with store.lock:
            return sum(1 for s in store.sessions.values()
                       if s.professional.national_id == national_id and s.auth_time >= since)

    def issue_tokens_for_tests(
        self, national_id: str, client_id: str, *, scope: str = "openid scope_all", auth_mode: str = "CARD"
    ) -> dict[str, Any]:
        """Open a session and mint a token set without a browser (same tokens as the code flow).

        Returns:
            The token endpoint JSON: access_token, id_token, refresh_token, expires_in,
            refresh_expires_in, token_type, session_state, scope.

        Raises:
            UsageError: unknown national id or client id, bad scope, or auth_mode not CARD/MOBILE.
        """
        professional = self._realm.config.professional(national_id)
        if professional is None:
            raise UsageError(f"no configured professional has national id {national_id!r}")
        if self._realm.config.client(client_id) is None:
            raise UsageError(f"no registered PSC client {client_id!r}")
        if auth_mode not in ("CARD", "MOBILE"):
            raise UsageError("auth_mode must be CARD or MOBILE")
        try:
            self._realm.check_scope(scope)
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
        session = self._realm.login(professional, auth_mode)
        grant = self._realm.store.new_grant(session, client_id, scope, nonce="")
        return dict(self._realm.tokens.token_response(grant, session))
