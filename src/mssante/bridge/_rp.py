"""The few places where the bridge needs more of :mod:`mssante.psc` than its session objects give.

The bridge keeps sessions in its store (shared by replicas), not in ``PSCClient``'s in-memory
registry, so it validates back-channel logout tokens itself and matches them against the store.
"""

from __future__ import annotations

import contextlib

from mssante.errors import MssanteError, PSCError
from mssante.psc import LogoutToken, PSCClient, TokenSet
from mssante.psc._jwt import LOGOUT_TOKEN_MAX_AGE
from mssante.psc._jwt import check_logout_token as _check

__all__ = ["check_logout_token", "logout_at_psc"]


async def check_logout_token(psc: PSCClient, token: str, seen: dict[str, float]) -> LogoutToken:
    """Validate a logout token with ``mssante.psc`` (OIDC BCL 1.0 §2.6) and refuse a replayed ``jti``.

    ``seen`` maps jti → forget-after time; it is pruned here.

    Raises:
        PSCError: (``invalid_logout_token``) invalid or replayed token.
        AuthUnavailable, TransportError, TrustError: PSC's JWKS could not be fetched.
    """
    now = psc.clock()  # the client's clock, as the token checks use it
    claims = await _check(psc._discovery, psc.settings, token, now=now)
    for jti, until in list(seen.items()):
        if until < now:
            del seen[jti]
    if claims.jti in seen:
        raise PSCError("logout token refused: replayed jti", oauth_error="invalid_logout_token")
    seen[claims.jti] = claims.issued_at + LOGOUT_TOKEN_MAX_AGE + 2 * psc.settings.leeway
    return claims


async def logout_at_psc(psc: PSCClient, tokens: TokenSet) -> None:
    """Revoke the refresh token and end the PSC session server side (RFC 7009, RP-Initiated Logout §2).

    Goes through a transient :class:`PSCSession` so that ``mssante.psc`` does the calls.

    Raises:
        Nothing: failures are logged by ``mssante.psc``.
    """
    session = psc.open_session(tokens)
    with contextlib.suppress(MssanteError):
        await psc.logout(session, server_side=True)
