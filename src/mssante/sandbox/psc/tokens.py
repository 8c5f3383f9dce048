"""Minting and checking the mock PSC's JWTs: access, ID and logout tokens.

Access tokens copy the shape of real BAS tokens (psc-igc.md §1.5, §5): RS256 with header
``typ: JWT`` and ``kid`` (not RFC 9068's ``at+jwt``, which PSC does not use and Dovecot
refuses), no ``aud``, ``typ`` claim ``Bearer``, ``sub`` = ``f:<uuid>:<national id>``,
``sid`` = ``session_state``.

ID tokens are RS256 with the realm key here. Real PSC probably signs them HS256 with the
client secret (psc-igc.md §1.5, ANS-KC); relying parties should read ``alg`` from the header.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
from typing import Any

from joserfc import jwt
from joserfc.errors import ExpiredTokenError, JoseError
from joserfc.jwk import RSAKey

from mssante.errors import TokenRejected
from mssante.sandbox.psc.claims import other_ids, subject
from mssante.sandbox.psc.keys import SIGNING_ALG
from mssante.sandbox.psc.store import Grant, SSOSession, Store, new_id

__all__ = ["BACKCHANNEL_LOGOUT_EVENT", "TokenIssuer", "TokenResponse"]

#: OIDC Back-Channel Logout 1.0 §2.4 event type.
BACKCHANNEL_LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
_ACR = "eidas1"  # the only level PSC supports (psc-igc.md §1.3)


class TokenResponse(dict[str, Any]):
    """A token endpoint answer. Its repr hides the tokens (Authlib logs ``%r`` at DEBUG)."""

    def __repr__(self) -> str:
        return f"TokenResponse(keys={sorted(self)})"

    __str__ = __repr__


def _header(token: str) -> dict[str, Any]:
    """Read a compact JWS header without trusting it (only to apply the alg allow-list)."""
    if token.count(".") != 2:
        raise TokenRejected("token is not a compact JWS")
    part = token.split(".", 1)[0]
    try:
        header = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (ValueError, binascii.Error) as exc:
        raise TokenRejected("token header is not base64url JSON") from exc
    if not isinstance(header, dict):
        raise TokenRejected("token header is not a JSON object")
    return header


class TokenIssuer:
    """Signs and verifies the realm's tokens with one RSA key."""

    def __init__(self, *, key: RSAKey, issuer: str, store: Store) -> None:
        self.key = key
        self.issuer = issuer
        self.store = store

    def sign(self, claims: dict[str, Any], typ: str = "JWT") -> str:
        """Sign ``claims`` as an RS256 compact JWT with ``kid`` and the given ``typ`` header."""
        header = {"alg": SIGNING_ALG, "typ": typ, "kid": self.key.kid}
        return jwt.encode(header, claims, self.key, algorithms=[SIGNING_ALG], default_type=None)

    def token_response(self, grant: Grant, session: SSOSession) -> TokenResponse:
        """Mint access, refresh and ID tokens for ``grant`` and return the token endpoint JSON.

        Fields as Keycloak/PSC answer them (psc-igc.md §1.3): ``access_token``, ``expires_in``,
        ``refresh_token``, ``refresh_expires_in``, ``token_type`` Bearer, ``id_token``,
        ``session_state``, ``scope``.
        """
        now = self.store.clock()
        lifetime = math.ceil(self.store.lifetimes.access_token)
        # As Keycloak: whole seconds, iat truncated and exp = iat + lifespan exactly (120 s at PSC);
        # the store expires the token at the same instant as its exp claim.
        iat = int(now)
        exp = iat + lifetime
        pro = session.professional
        jti = new_id()
        access = {
            "exp": exp, "iat": iat, "auth_time": int(session.auth_time), "jti": jti, "iss": self.issuer,
            "sub": subject(pro), "typ": "Bearer", "azp": grant.client_id, "nonce": grant.nonce,
            "session_state": session.sid, "sid": session.sid, "acr": _ACR, "scope": grant.scope,
            "authMode": session.auth_mode, "otherIds": other_ids(pro), "preferred_username": pro.national_id,
        }
        access_token = self.sign(access)
        self.store.record_access_token(jti, grant.id, exp)
        refresh = self.store.new_refresh_token(grant, session)
        response = TokenResponse(
            access_token=access_token,
            expires_in=lifetime,
            refresh_expires_in=max(0, math.floor(refresh.expires_at - now)),
            refresh_token=refresh.value,
            token_type="Bearer",  # noqa: S106 - a token type, not a secret
            session_state=session.sid,
            scope=grant.scope,
        )
        response["not-before-policy"] = 0  # Keycloak field, kept for wire fidelity
        if "openid" in grant.scope.split():
            response["id_token"] = self.sign(self._id_claims(grant, session, access_token, iat, exp))
        return response

    def _id_claims(self, grant: Grant, session: SSOSession, access_token: str, iat: int, exp: int) -> dict[str, Any]:
        pro = session.professional
        # at_hash: left half of SHA-256 of the access token, base64url (OIDC Core §3.1.3.6).
        digest = hashlib.sha256(access_token.encode("ascii")).digest()
        at_hash = base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()
        claims: dict[str, Any] = {
            "exp": exp, "iat": iat, "auth_time": int(session.auth_time), "jti": new_id(), "iss": self.issuer,
            "aud": grant.client_id, "sub": subject(pro), "typ": "ID", "azp": grant.client_id,
            "session_state": session.sid, "sid": session.sid, "at_hash": at_hash, "acr": _ACR,
            "SubjectNameID": pro.national_id, "preferred_username": pro.national_id,
            "given_name": pro.given_name, "family_name": pro.family_name, "idp": "PSC",
        }
        if grant.nonce:
            claims["nonce"] = grant.nonce  # OIDC Core §3.1.3.7 rule 11
        return claims

    def logout_token(self, session: SSOSession, client_id: str) -> str:
        """Return a Back-Channel Logout token for ``client_id`` (OIDC BCL 1.0 §2.4).

        Claims iss, aud, iat, exp, jti, sub, sid and ``events``; never ``nonce`` (§2.4).
        Header ``typ: logout+jwt`` as §2.4 recommends for explicit typing.
        """
        iat = int(self.store.clock())
        claims = {
            "iss": self.issuer, "aud": client_id, "iat": iat, "exp": iat + 120, "jti": new_id(),
            "sub": subject(session.professional), "sid": session.sid, "events": {BACKCHANNEL_LOGOUT_EVENT: {}},
        }
        return self.sign(claims, typ="logout+jwt")

    def decode(self, token: str, *, check_exp: bool = True) -> dict[str, Any]:
        """Verify signature, algorithm, key id, issuer and (optionally) expiry; return the claims.

        Raises:
            TokenRejected: the token is malformed, uses another algorithm than RS256 (``none``
                included), another key, another issuer, or is expired.
        """
        header = _header(token)
        if header.get("alg") != SIGNING_ALG:  # alg allow-list (RFC 8725 §3.1)
            raise TokenRejected(f"algorithm {str(header.get('alg'))[:20]!r} is not accepted")
        if header.get("kid") != self.key.kid:
            raise TokenRejected("token was not signed with the realm key")
        try:
            claims = dict(jwt.decode(token, self.key, algorithms=[SIGNING_ALG]).claims)
        except JoseError as exc:
            raise TokenRejected(f"token signature or payload is invalid ({type(exc).__name__})") from exc
        if claims.get("iss") != self.issuer:
            raise TokenRejected("token was issued by another issuer")
        if check_exp:
            registry = jwt.JWTClaimsRegistry(now=int(self.store.clock()), exp={"essential": True})
            try:
                registry.validate(claims)
            except ExpiredTokenError as exc:
                raise TokenRejected("token is expired") from exc  # "exp" (RFC 7519 §4.1.4)
            except JoseError as exc:
                raise TokenRejected(f"token claims are invalid ({type(exc).__name__})") from exc
        return claims

    def validate_access_token(self, token: str) -> dict[str, Any]:
        """Check an access token locally and against the session state; return its claims.

        Raises:
            TokenRejected: see :meth:`decode`; also when the token is not an access token, is
                unknown here, revoked, or its session ended (logout, sso_max, sso_idle).
        """
        claims = self.decode(token)
        jti = claims.get("jti")
        if claims.get("typ") != "Bearer" or not isinstance(jti, str):
            raise TokenRejected("token is not an access token")
        problem = self.store.access_token_problem(jti)
        if problem is not None:
            raise TokenRejected(f"token {problem}")
        return claims
