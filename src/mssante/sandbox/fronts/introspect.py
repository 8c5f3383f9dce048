"""Token checks by introspection (RFC 7662), the other way an operator may validate PSC tokens.

The fronts' default is local validation (signature against PSC's JWKS). Some operators
introspect instead (Dovecot's ``introspection_mode = post``); ``token_check = "introspection"``
in the sandbox configuration selects this verifier, so an LPS can be tested against both.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx2

from mssante.errors import AuthUnavailable, TokenRejected
from mssante.secret import Secret

__all__ = ["IntrospectionTokenVerifier"]


class IntrospectionTokenVerifier:
    """Asks PSC's introspection endpoint whether a token is active (RFC 7662 §2)."""

    def __init__(self, url: str, client_id: str, client_secret: Secret, *, timeout: float = 5.0) -> None:
        """Introspect at ``url``, authenticating with HTTP Basic (RFC 7662 §2.1)."""
        self._url = url
        self._auth = (client_id, client_secret)
        self._timeout = timeout

    def __repr__(self) -> str:
        return f"IntrospectionTokenVerifier({self._url!r})"

    async def verify(self, token: str) -> Mapping[str, Any]:
        """Return the active token's claims.

        Raises:
            TokenRejected: the token is not active (expired, revoked, forged, unknown).
            AuthUnavailable: PSC does not answer, or answers an error.
        """
        client_id, secret = self._auth
        try:
            async with httpx2.AsyncClient(timeout=self._timeout) as client:
                response = await client.post(
                    self._url, data={"token": token, "token_type_hint": "access_token"},
                    auth=(client_id, secret.reveal()),
                )
        except httpx2.HTTPError as exc:
            raise AuthUnavailable(f"PSC introspection unreachable: {type(exc).__name__}") from None
        if response.status_code != 200:
            raise AuthUnavailable(f"PSC introspection answered HTTP {response.status_code}")
        try:
            claims = response.json()
        except ValueError:
            raise AuthUnavailable("PSC introspection answered something other than JSON") from None
        if not isinstance(claims, dict) or claims.get("active") is not True:
            raise TokenRejected("token is not active (RFC 7662 §2.2)")
        return claims
