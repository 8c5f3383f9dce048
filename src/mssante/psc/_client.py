"""``PSCClient``: the relying party facade (code flow, refresh, userinfo, introspection, revocation).

One ``PSCClient`` per registered PSC client, shared by every professional's session: it holds
one httpx2 connection pool, the discovery/JWKS cache and the registry of live sessions (for
back-channel logout). CIBA and logout live in :mod:`._ciba` and :mod:`._logout`.

Authlib's ``AsyncOAuth2Client`` keeps one token in the client object (``client.token``), which
fits one user per client, not a server holding many sessions; so this module uses Authlib's
client-side pieces (grant URI, PKCE S256 challenge, client authentication encoders) over one
plain httpx2 client, and keeps every token in the caller's :class:`TokenSet` / :class:`PSCSession`.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Final

import httpx2
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from mssante.clock import SYSTEM_CLOCK, Clock
from mssante.errors import PSCError, UsageError
from mssante.psc import _ciba, _logout
from mssante.psc._discovery import Discovery, ProviderMetadata
from mssante.psc._http import HTTP
from mssante.psc._jwt import check_access_token, check_id_token
from mssante.psc._models import AuthorizationRequest, Channel, CibaRequest, LogoutResult, TokenSet, parse_callback
from mssante.psc._session import PSCSession
from mssante.psc._settings import PSCSettings, check_url
from mssante.secret import Secret

__all__ = ["PSCClient"]

log = logging.getLogger("mssante.psc")
#: A pending authorization request older than this is refused at the callback (seconds).
AUTHORIZATION_MAX_AGE: Final = 600.0
_RESERVED: Final = frozenset({
    "response_type", "client_id", "redirect_uri", "scope", "state", "nonce", "acr_values", "code_challenge",
    "code_challenge_method", "prompt", "response_mode", "request", "request_uri",
})


def _reveal(token: Secret | str) -> str:
    return token.reveal() if isinstance(token, Secret) else token


class PSCClient:
    """A Pro Santé Connect relying party. Use as ``async with PSCClient(settings) as psc:``.

    Attributes:
        settings: the :class:`PSCSettings`.
    """

    def __init__(self, settings: PSCSettings, *, transport: httpx2.AsyncBaseTransport | None = None,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        """Prepare the client; nothing is fetched until the first call.

        Args:
            transport: an httpx2 transport, for tests (``httpx2.MockTransport``).
            clock: the time, for token expiry checks and waits (CIBA polling, session expiry).
        """
        self.settings = settings
        self._clock = clock
        self._http = HTTP(settings, transport=transport)
        self._discovery = Discovery(self._http)
        self._sessions: set[PSCSession] = set()
        self._logout_jtis: dict[str, float] = {}

    def __repr__(self) -> str:
        return f"PSCClient({self.settings.issuer!r}, client_id={self.settings.client_id!r})"

    async def __aenter__(self) -> PSCClient:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP connections. Sessions stay usable only until their next refresh."""
        await self._http.aclose()

    # -- discovery -------------------------------------------------------------------------------
    # -- what the CIBA and logout flows use (the RelyingParty protocol of ._party) ---------------
    @property
    def clock(self) -> Clock:
        """The clock this client reads and waits on."""
        return self._clock

    @property
    def http(self) -> HTTP:
        """The bounded HTTP exchange with PSC."""
        return self._http

    @property
    def discovery(self) -> Discovery:
        """PSC's discovery document and keys."""
        return self._discovery

    @property
    def logout_jtis(self) -> dict[str, float]:
        """The back-channel logout tokens seen (``jti`` → until when a replay is refused)."""
        return self._logout_jtis

    async def metadata(self, *, refresh: bool = False) -> ProviderMetadata:
        """Return PSC's discovery document, checked and cached (``discovery_ttl``).

        Raises:
            PSCError: ``invalid_issuer`` (the document names another issuer, OIDC Discovery
                §4.3) or ``invalid_discovery``.
            AuthUnavailable, TransportError, TrustError: PSC could not be reached.
        """
        return await self._discovery.metadata(refresh=refresh)

    # -- authorization code flow (RFC 6749 §4.1, RFC 7636, OIDC Core §3.1) ------------------------
    async def begin_authorization(self, redirect_uri: str, *, prompt: str | None = None,
                                  extra: Mapping[str, str] | None = None) -> tuple[str, AuthorizationRequest]:
        """Build the authorization URL, with fresh state, nonce and PKCE S256 verifier.

        Store the returned :class:`AuthorizationRequest` server side (never in the browser)
        until the callback. Sends ``scope`` and ``acr_values`` from the settings.

        Returns:
            The URL to redirect the browser to, and the pending request.

        Args:
            redirect_uri: registered at PSC; https, or loopback http (RFC 8252 §7.3).
            prompt: OIDC ``prompt`` (``login`` forces a new card authentication).
            extra: other parameters (``kc_idp_hint``...); they cannot replace the ones above.

        Raises:
            ConfigError: ``redirect_uri`` is not https (or loopback http for the sandbox).
            UsageError: ``extra`` tries to set a parameter this method controls.
            PSCError, AuthUnavailable, TransportError, TrustError: discovery failed.
        """
        check_url(redirect_uri, loopback_ok=True, what="redirect_uri")
        clash = set(extra or {}) & _RESERVED
        if clash:
            raise UsageError(f"extra cannot set {', '.join(sorted(clash))}")
        meta = await self.metadata()
        request = AuthorizationRequest(
            state=Secret(secrets.token_urlsafe(32)), nonce=Secret(secrets.token_hex(32)),
            code_verifier=Secret(secrets.token_urlsafe(64)),  # 86 chars: RFC 7636 §4.1 asks 43-128
            redirect_uri=redirect_uri, created_at=self._clock(),
        )
        params: dict[str, str] = dict(extra or {})
        params.update(
            nonce=request.nonce.reveal(), acr_values=self.settings.acr_values,
            code_challenge=create_s256_code_challenge(request.code_verifier.reveal()), code_challenge_method="S256",
        )
        if prompt is not None:
            params["prompt"] = prompt
        url = prepare_grant_uri(meta.endpoint("authorization_endpoint"), self.settings.client_id, "code",
                                redirect_uri=redirect_uri, scope=self.settings.scope, state=request.state.reveal(),
                                **params)
        return str(url), request

    async def complete_authorization(self, request: AuthorizationRequest,
                                     callback: str | Mapping[str, str]) -> TokenSet:
        """Check the callback, redeem the code and validate the ID token.

        Args:
            request: what :meth:`begin_authorization` returned for this browser.
            callback: the callback URL (or its query string), or its parameters.

        Raises:
            PSCError: ``invalid_state`` (state missing or different, RFC 6749 §10.12; or the
                request is older than 10 min); the ``error`` of an error callback
                (``access_denied``..., RFC 6749 §4.1.2.1); ``invalid_issuer`` (RFC 9207 ``iss``
                differs); ``invalid_callback`` (no code, repeated or fragment parameters);
                the token endpoint's error (``invalid_grant`` for a replayed or expired code,
                ``invalid_client``); ``invalid_id_token``.
            AuthUnavailable, TransportError, TrustError: PSC could not be reached.
            RemoteProtocolError: PSC's answer was malformed.
        """
        params = parse_callback(callback)
        state = params.get("state")
        if state is None or not Secret(state) == request.state:  # constant-time comparison
            raise PSCError("the callback's state does not match the authorization request",
                           oauth_error="invalid_state", requirement="RFC 6749 §10.12")
        if self._clock() - request.created_at > AUTHORIZATION_MAX_AGE:
            raise PSCError("the authorization request is too old", oauth_error="invalid_state")
        meta = await self.metadata()
        iss = params.get("iss")
        iss_promised = meta.raw.get("authorization_response_iss_parameter_supported") is True
        if (iss is not None and iss != self.settings.issuer) or (iss is None and iss_promised):
            raise PSCError("the callback's iss is not our issuer", oauth_error="invalid_issuer",
                           requirement="RFC 9207 §2.4")
        if "error" in params:
            error = params["error"][:64]
            raise PSCError(f"PSC refused the authorization: {error}", oauth_error=error)
        code = params.get("code")
        if not code:
            raise PSCError("the callback has no code", oauth_error="invalid_callback")
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": request.redirect_uri,
                "code_verifier": request.code_verifier.reveal()}
        return await self.token_request(form, "authorization code exchange", nonce=request.nonce.reveal())

    # -- token endpoint ------------------------------------------------------------------------
    async def token_request(self, form: Mapping[str, str], what: str, *, nonce: str | None = None,
                            previous: TokenSet | None = None, id_token_required: bool = True) -> TokenSet:
        """POST to the token endpoint with client authentication; validate the answer.

        Low level: used by the code, refresh and CIBA grants.

        Raises:
            PSCError: the server's OAuth error, or ``invalid_id_token``.
            AuthUnavailable, TransportError, TrustError, RemoteProtocolError: see :class:`PSCClient`.
        """
        meta = await self.metadata()
        response = await self._http.post_form(meta.endpoint("token_endpoint"), form, what)
        body = self._http.json(response, what)
        now = self._clock()
        raw_id = body.get("id_token")
        claims: dict[str, Any] | None = None
        if isinstance(raw_id, str) and raw_id:
            access = body.get("access_token")
            claims = await check_id_token(
                self._discovery, self.settings, raw_id, now=now, nonce=nonce,
                access_token=access if isinstance(access, str) else None,
                previous=previous.id_claims if previous is not None and previous.id_claims else None)
        elif id_token_required and previous is None:  # OIDC Core §3.1.3.3: openid scope → ID token
            raise PSCError("PSC's token answer has no ID token", oauth_error="invalid_id_token")
        return TokenSet.from_response(body, now=now, id_claims=claims, previous=previous)

    async def refresh(self, tokens: TokenSet) -> TokenSet:
        """Use the refresh token (RFC 6749 §6); return the new set (rotated refresh token kept).

        Prefer :meth:`PSCSession.token`, which refreshes ahead of expiry and once at a time.

        Raises:
            PSCError: ``invalid_grant`` (refresh token expired, rotated or revoked: the PSC
                session is over), other OAuth errors, ``invalid_id_token``; ``UsageError`` when
                ``tokens`` has no refresh token.
            AuthUnavailable, TransportError, TrustError, RemoteProtocolError: see :class:`PSCClient`.
        """
        if tokens.refresh_token is None:
            raise UsageError("this token set has no refresh token")
        form = {"grant_type": "refresh_token", "refresh_token": tokens.refresh_token.reveal()}
        return await self.token_request(form, "token refresh", previous=tokens)

    # -- sessions -------------------------------------------------------------------------------
    def open_session(self, tokens: TokenSet, *, margin: float | None = None) -> PSCSession:
        """Start tracking one professional's session (a ``TokenSource``, ECO.1.2.5-7).

        Args:
            margin: seconds before expiry to refresh; default ``settings.refresh_margin``.
        """
        session = PSCSession(self, tokens, margin=self.settings.refresh_margin if margin is None else margin,
                             clock=self._clock)
        self._sessions.add(session)
        return session

    def sessions(self) -> list[PSCSession]:
        """Return the live sessions opened by this client."""
        return list(self._sessions)

    def _session_ended(self, session: PSCSession) -> None:
        self._sessions.discard(session)

    # -- resource calls -------------------------------------------------------------------------
    async def userinfo(self, token: Secret | str | PSCSession) -> dict[str, Any]:
        """Call the UserInfo endpoint (OIDC Core §5.3) with a Bearer token (RFC 6750 §2.1).

        Returns:
            The claims: ``SubjectNameID`` (national id), ``SubjectRefPro``... (psc-igc.md §1.5).

        Raises:
            PSCError: ``invalid_token`` (HTTP 401), or another error answer.
            AuthUnavailable, TransportError, TrustError, RemoteProtocolError: see :class:`PSCClient`.
        """
        access = await token.token() if isinstance(token, PSCSession) else token
        meta = await self.metadata()
        response = await self._http.send("GET", meta.endpoint("userinfo_endpoint"), "userinfo request",
                                         headers={"Authorization": f"Bearer {_reveal(access)}"})
        if response.status_code == 401:
            raise PSCError("PSC refused the access token at userinfo", oauth_error="invalid_token")
        return self._http.json(response, "userinfo request")

    async def introspect(self, token: Secret | str, *, token_type_hint: str | None = None) -> dict[str, Any]:
        """Ask PSC whether a token is active (RFC 7662 §2.1), with client authentication.

        Returns:
            The answer: ``{"active": false}`` or the token's claims with ``active: true``.

        Raises:
            PSCError: ``invalid_client`` or another error answer.
            AuthUnavailable, TransportError, TrustError, RemoteProtocolError: see :class:`PSCClient`.
        """
        meta = await self.metadata()
        form = {"token": _reveal(token)}
        if token_type_hint:
            form["token_type_hint"] = token_type_hint
        response = await self._http.post_form(meta.endpoint("introspection_endpoint"), form, "introspection")
        body = self._http.json(response, "introspection")
        if not isinstance(body.get("active"), bool):
            raise PSCError("PSC's introspection answer has no boolean active", oauth_error="invalid_response")
        return body

    async def revoke(self, token: Secret | str, *, token_type_hint: str = "refresh_token") -> None:  # noqa: S107
        """Revoke a token (RFC 7009 §2.1); revoking a refresh token ends its grant.

        Raises:
            PSCError: ``invalid_client``, ``unsupported_token_type`` or another error answer.
            AuthUnavailable, TransportError, TrustError: see :class:`PSCClient`.
        """
        meta = await self.metadata()
        form = {"token": _reveal(token), "token_type_hint": token_type_hint}
        response = await self._http.post_form(meta.endpoint("revocation_endpoint"), form, "revocation")
        if response.status_code != 200:  # RFC 7009 §2.2: 200 even for an unknown token
            self._http.json(response, "revocation")
            raise PSCError(f"PSC answered the revocation with HTTP {response.status_code}")

    async def validate_id_token(self, token: Secret | str, *, nonce: str | None = None) -> dict[str, Any]:
        """Validate an ID token (signature, alg allow-list, iss, aud, exp/iat, acr, nonce).

        Raises:
            PSCError: (``invalid_id_token``) with the reason.
            AuthUnavailable, TransportError, TrustError: the JWKS could not be fetched.
        """
        return await check_id_token(self._discovery, self.settings, _reveal(token), now=self._clock(), nonce=nonce)

    async def validate_access_token(self, token: Secret | str, *, azp: str | None = None) -> dict[str, Any]:
        """Validate a PSC access token locally against the JWKS (operators, tests); see :mod:`._jwt`.

        Raises:
            PSCError: (``invalid_token``) with the reason.
            AuthUnavailable, TransportError, TrustError: the JWKS could not be fetched.
        """
        return await check_access_token(self._discovery, self.settings, _reveal(token), now=self._clock(), azp=azp)

    # -- CIBA and logout (implemented in _ciba / _logout) ------------------------------------------
    async def start_ciba(self, national_id: str, *, binding_message: str | None = None,
                         channel: Channel = "MOBILE") -> CibaRequest:
        """Ask PSC to authenticate a professional on their card or e-CPS (CIBA Core §7, poll mode).

        See :func:`mssante.psc._ciba.start`.

        Raises:
            UsageError: bad national id, channel or binding message.
            PSCError: ``unknown_user_id``, ``unauthorized_client``, ``invalid_client``...
            AuthUnavailable, TransportError, TrustError, RemoteProtocolError: see :class:`PSCClient`.
        """
        return await _ciba.start(self, national_id, binding_message=binding_message, channel=channel)

    async def poll_ciba(self, request: CibaRequest) -> TokenSet | None:
        """Poll once; None while pending (``slow_down`` raises ``request.interval``).

        Raises:
            PSCError: ``expired_token``, ``access_denied``, ``invalid_grant``, ``invalid_id_token``...
            AuthUnavailable, TransportError, TrustError, RemoteProtocolError: see :class:`PSCClient`.
        """
        return await _ciba.poll(self, request)

    async def wait_ciba(
        self, request: CibaRequest, timeout: float | None = None  # noqa: ASYNC109 - see _ciba.wait
    ) -> TokenSet:
        """Poll at the request's interval until tokens come, PSC refuses, or ``timeout``.

        Raises:
            PSCError: ``expired_token``, ``access_denied``...
            TimeoutError: ``timeout`` elapsed first (the request may still be answered).
            AuthUnavailable, TransportError, TrustError, RemoteProtocolError: see :class:`PSCClient`.
        """
        return await _ciba.wait(self, request, timeout)

    async def logout(self, session: PSCSession, *, post_logout_redirect_uri: str | None = None,
                     state: str | None = None, server_side: bool = True) -> LogoutResult:
        """Log out: revoke the refresh token, end the PSC session, end the local session.

        See :func:`mssante.psc._logout.logout`.

        Raises:
            ConfigError: ``post_logout_redirect_uri`` is not https (or loopback http).
        """
        return await _logout.logout(self, session, post_logout_redirect_uri=post_logout_redirect_uri,
                                    state=state, server_side=server_side)

    async def handle_backchannel_logout(self, logout_token: str) -> list[PSCSession]:
        """Validate a back-channel logout token and end the sessions it names.

        See :func:`mssante.psc._logout.backchannel`.

        Raises:
            PSCError: (``invalid_logout_token``) invalid or replayed; answer 400 ``invalid_request``.
            AuthUnavailable, TransportError, TrustError: the JWKS could not be fetched.
        """
        return await _logout.backchannel(self, logout_token)
