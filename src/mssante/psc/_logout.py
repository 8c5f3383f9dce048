"""Ending sessions: RP-initiated logout and back-channel logout.

* RP-Initiated Logout 1.0 §2: the end-session URL with ``id_token_hint``,
  ``post_logout_redirect_uri`` and ``state`` for the browser, and/or the same request made
  server side as ANS's example proxy does (psc-igc.md §1.7), sent as a POST form so the ID
  token stays out of URLs and access logs.
* RFC 7009: the refresh token is revoked first.
* OIDC Back-Channel Logout 1.0: :func:`backchannel` validates the logout token (§2.6),
  refuses a replayed ``jti`` and ends the matching sessions (§2.7).

In every case the local session ends (ECO.1.2.6), even when PSC cannot be reached.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import httpx2

from mssante.errors import MssanteError, PSCError
from mssante.psc._jwt import LOGOUT_TOKEN_MAX_AGE, check_logout_token
from mssante.psc._models import LogoutResult
from mssante.psc._session import PSCSession
from mssante.psc._settings import check_url
from mssante.secret import Secret

if TYPE_CHECKING:
    from mssante.psc._party import RelyingParty

__all__ = ["backchannel", "logout"]

log = logging.getLogger("mssante.psc")


async def logout(client: RelyingParty, session: PSCSession, *, post_logout_redirect_uri: str | None = None,
                 state: str | None = None, server_side: bool = True) -> LogoutResult:
    """Revoke the refresh token, end the PSC session, and end ``session`` locally.

    Args:
        post_logout_redirect_uri: registered at PSC; when given, the result holds the
            front-channel URL to redirect the browser to (which also clears PSC's cookie).
        state: echoed by PSC on that redirect.
        server_side: also call the end-session endpoint from the server (ANS's way).

    Returns:
        What was done; PSC failures are logged (never with a token) and reported as False.

    Raises:
        ConfigError: ``post_logout_redirect_uri`` is not https (or loopback http).
    """
    if post_logout_redirect_uri is not None:
        check_url(post_logout_redirect_uri, loopback_ok=True, what="post_logout_redirect_uri")
    tokens = session.tokens
    revoked = ended_at_psc = False
    url: Secret | None = None
    try:
        if tokens is None:
            return LogoutResult(front_channel_url=None, revoked=False, ended_at_psc=False)
        meta = await client.metadata()
        if tokens.refresh_token is not None and meta.has("revocation_endpoint"):
            try:
                await client.revoke(tokens.refresh_token, token_type_hint="refresh_token")  # noqa: S106 - a hint name
                revoked = True
            except MssanteError as exc:
                log.warning("PSC refresh token revocation failed: %s", exc.error)
        if meta.has("end_session_endpoint") and tokens.id_token is not None:
            endpoint = meta.endpoint("end_session_endpoint")
            hint = {"id_token_hint": tokens.id_token.reveal(), "client_id": client.settings.client_id}
            if server_side:
                ended_at_psc = await _end_at_psc(client, endpoint, hint)
            if post_logout_redirect_uri is not None:
                query = {**hint, "post_logout_redirect_uri": post_logout_redirect_uri}
                if state is not None:
                    query["state"] = state
                url = Secret(str(httpx2.URL(endpoint, params=query)))
    except MssanteError as exc:  # discovery failed: still end locally
        log.warning("PSC logout incomplete: %s", exc.error)
    finally:
        session.end("logout")
    return LogoutResult(front_channel_url=url, revoked=revoked, ended_at_psc=ended_at_psc)


async def _end_at_psc(client: RelyingParty, endpoint: str, form: dict[str, str]) -> bool:
    try:
        response = await client.http.post_form(endpoint, form, "end-session request", authenticate=False)
    except MssanteError as exc:
        log.warning("PSC end-session request failed: %s", exc.error)
        return False
    if response.status_code >= 400:
        log.warning("PSC end-session request answered HTTP %d", response.status_code)
        return False
    return True


async def backchannel(client: RelyingParty, logout_token: str) -> list[PSCSession]:
    """Handle a back-channel logout token; return the sessions that it ended.

    §2.7: a ``sid`` names one session (whose ``sub`` must match when both are given); a ``sub``
    alone names all of that professional's sessions. Zero matches is not an error (the
    session may have ended already). A ``jti`` seen within the token's validity is a replay.

    Raises:
        PSCError: (``invalid_logout_token``) invalid or replayed token; answer 400
            ``invalid_request`` (§2.8).
        AuthUnavailable, TransportError, TrustError: the JWKS could not be fetched.
    """
    now = client.clock()
    claims = await check_logout_token(client.discovery, client.settings, logout_token, now=now)
    seen = client.logout_jtis
    for jti, until in list(seen.items()):
        if until < now:
            del seen[jti]
    if claims.jti in seen:
        raise PSCError("logout token refused: replayed jti", oauth_error="invalid_logout_token")
    seen[claims.jti] = claims.issued_at + LOGOUT_TOKEN_MAX_AGE + 2 * client.settings.leeway
    matched = []
    for session in client.sessions():
        if claims.sid is not None:
            hit = session.sid == claims.sid and (claims.subject is None or session.subject == claims.subject)
        else:
            hit = session.subject == claims.subject
        if hit:
            matched.append(session)
    for session in matched:
        session.end("backchannel_logout")
    return matched
