"""JWT checks with joserfc: ID tokens, access tokens (optional) and back-channel logout tokens.

joserfc decodes (signature, algorithm allow-list, key by ``kid``); the claim rules of each
token type are here, each citing its section. JOSE failures become
:class:`~mssante.errors.PSCError` with an ``oauth_error`` naming the token type
(``invalid_id_token``, ``invalid_token``, ``invalid_logout_token``) and a reason in the message.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Collection, Mapping
from typing import Any, Final

from joserfc import jwt
from joserfc.errors import ExpiredTokenError, InvalidClaimError, JoseError, MissingClaimError
from joserfc.jwk import KeySet, OctKey

from mssante.errors import PSCError
from mssante.psc._discovery import Discovery
from mssante.psc._models import LogoutToken
from mssante.psc._settings import PSCSettings

__all__ = [
    "BACKCHANNEL_LOGOUT_EVENT",
    "check_access_token",
    "check_id_token",
    "check_logout_token",
]

#: OIDC Back-Channel Logout 1.0 §2.4.
BACKCHANNEL_LOGOUT_EVENT: Final = "http://schemas.openid.net/event/backchannel-logout"
#: A logout token older than this (seconds, after leeway) is refused; this bounds the jti cache.
LOGOUT_TOKEN_MAX_AGE: Final = 600


def _fail(code: str, reason: str) -> PSCError:
    return PSCError(f"{code.removeprefix('invalid_').replace('_', ' ')} refused: {reason}", oauth_error=code)


def read_header(token: str, code: str) -> dict[str, Any]:
    """Read a compact JWS header *without trusting it*, to choose the key (RFC 7515 §7.1).

    Raises:
        PSCError: (``oauth_error=code``) not a compact JWS or not a JSON header.
    """
    if not isinstance(token, str) or token.count(".") != 2:
        raise _fail(code, "not a compact JWS")
    part = token.split(".", 1)[0]
    try:
        header = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (ValueError, binascii.Error) as exc:
        raise _fail(code, "the header is not base64url JSON") from exc
    if not isinstance(header, dict):
        raise _fail(code, "the header is not a JSON object")
    return header


async def _verify(discovery: Discovery, settings: PSCSettings, token: str, code: str,
                  algorithms: Collection[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Check the signature with an allow-listed algorithm; return (header, claims)."""
    header = read_header(token, code)
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in algorithms:  # RFC 8725 §3.1: never trust "alg" blindly
        raise _fail(code, f"algorithm {str(alg)[:16]!r} is not allowed")
    key: KeySet | OctKey
    if alg.startswith("HS"):
        # PSC may sign ID tokens with HS256 keyed by the client secret (psc-igc.md §1.5).
        if settings.client_secret is None:
            raise _fail(code, "an HS256 signature needs a client secret")
        key = OctKey.import_key(settings.client_secret.reveal())
    else:
        kid = header.get("kid")
        key = await discovery.key_set(kid=kid if isinstance(kid, str) else None)
    try:
        decoded = jwt.decode(token, key, algorithms=[alg])
    except JoseError as exc:
        raise _fail(code, f"{exc.error} (signature or key)") from exc
    return dict(decoded.header), dict(decoded.claims)


def _registry(claims: dict[str, Any], code: str, *, now: float, leeway: int, **options: Any) -> None:
    registry = jwt.JWTClaimsRegistry(now=int(now), leeway=leeway, **options)
    try:
        registry.validate(claims)
    except ExpiredTokenError as exc:
        raise _fail(code, "expired (exp)") from exc
    except MissingClaimError as exc:
        raise _fail(code, f"missing claim {exc.description}") from exc
    except InvalidClaimError as exc:
        raise _fail(code, f"invalid claim ({exc.description})") from exc
    except JoseError as exc:
        raise _fail(code, exc.error) from exc


def _audience_ok(claims: Mapping[str, Any], client_id: str) -> bool:
    """OIDC Core §3.1.3.7 rules 3-5: aud contains us; with several audiences, azp is us."""
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    if client_id not in audiences:
        return False
    azp = claims.get("azp")
    if len(audiences) > 1 and azp is None:
        return False
    return azp is None or azp == client_id


def _same(a: object, b: object) -> bool:
    return isinstance(a, str) and isinstance(b, str) and hmac.compare_digest(a.encode(), b.encode())


async def check_id_token(
    discovery: Discovery, settings: PSCSettings, token: str, *, now: float, nonce: str | None = None,
    access_token: str | None = None, previous: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Validate an ID token (OIDC Core §3.1.3.7, and §12.2 after a refresh); return its claims.

    Args:
        nonce: the nonce sent in the authorization request: the token must carry it (rule 11).
            None for CIBA and refresh, where none was sent.
        access_token: when given and the token has ``at_hash``, it must match (§3.1.3.8).
        previous: claims of the session's first ID token; on refresh ``iss``, ``sub`` and
            ``aud`` must not change, and a ``nonce`` must be the original one (§12.2).

    Raises:
        PSCError: (``oauth_error="invalid_id_token"``) with the reason.
        AuthUnavailable, TransportError, TrustError: the JWKS could not be fetched.
    """
    code = "invalid_id_token"
    _, claims = await _verify(discovery, settings, token, code, settings.id_token_algorithms)
    _registry(claims, code, now=now, leeway=settings.leeway,
              iss={"essential": True, "value": settings.issuer},  # rule 2
              sub={"essential": True}, exp={"essential": True}, iat={"essential": True},  # rules 9-10
              acr={"essential": True})  # PSC always sends acr (psc-igc.md §1.5; acr_values=eidas1)
    if not _audience_ok(claims, settings.client_id):
        raise _fail(code, "aud/azp do not name this client (OIDC Core §3.1.3.7 rules 3-5)")
    if nonce is not None and not _same(claims.get("nonce"), nonce):
        raise _fail(code, "nonce does not match the authorization request (OIDC Core §3.1.3.7 rule 11)")
    if previous is not None:
        for name in ("iss", "sub"):
            if claims.get(name) != previous.get(name):
                raise _fail(code, f"{name} changed on refresh (OIDC Core §12.2)")
        if "nonce" in claims and claims.get("nonce") != previous.get("nonce"):
            raise _fail(code, "nonce changed on refresh (OIDC Core §12.2)")
    at_hash = claims.get("at_hash")
    if access_token is not None and at_hash is not None:
        digest = hashlib.sha256(access_token.encode("ascii", "replace")).digest()
        expected = base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()
        if not _same(at_hash, expected):
            raise _fail(code, "at_hash does not match the access token (OIDC Core §3.1.3.8)")
    return claims


async def check_access_token(discovery: Discovery, settings: PSCSettings, token: str, *, now: float,
                             azp: str | None = None) -> dict[str, Any]:
    """Validate a PSC access token locally against the JWKS (an operator's view); return its claims.

    PSC access tokens are RS256 JWTs without ``aud`` (psc-igc.md §1.5). This checks the
    signature, ``iss``, ``exp``/``iat``, ``typ`` Bearer and, when given, ``azp``. It cannot see
    revocation or logout: use introspection for that.

    Raises:
        PSCError: (``oauth_error="invalid_token"``, RFC 6750 §3.1) with the reason.
        AuthUnavailable, TransportError, TrustError: the JWKS could not be fetched.
    """
    code = "invalid_token"
    _, claims = await _verify(discovery, settings, token, code, ("RS256",))
    options: dict[str, Any] = {
        "iss": {"essential": True, "value": settings.issuer}, "exp": {"essential": True},
        "iat": {"essential": True}, "typ": {"value": "Bearer"},
    }
    if azp is not None:
        options["azp"] = {"essential": True, "value": azp}
    _registry(claims, code, now=now, leeway=settings.leeway, **options)
    return claims


async def check_logout_token(discovery: Discovery, settings: PSCSettings, token: str, *,
                             now: float) -> LogoutToken:
    """Validate a back-channel logout token (OIDC Back-Channel Logout 1.0 §2.6).

    Checks, in the spec's order: signature with an allowed algorithm (typ ``logout+jwt`` when
    typed, §2.4); ``iss``, ``aud``, ``iat`` (not older than :data:`LOGOUT_TOKEN_MAX_AGE`),
    ``exp`` when present; ``sub`` and/or ``sid``; ``events`` holding the back-channel logout
    event as a JSON object; no ``nonce``; a ``jti``. Replay (same ``jti``) is checked by the caller.

    Raises:
        PSCError: (``oauth_error="invalid_logout_token"``) with the reason; the receiving
            endpoint answers 400 ``invalid_request`` (§2.8).
        AuthUnavailable, TransportError, TrustError: the JWKS could not be fetched.
    """
    code = "invalid_logout_token"
    header, claims = await _verify(discovery, settings, token, code, settings.id_token_algorithms)
    if header.get("typ", "JWT") not in ("JWT", "logout+jwt", "application/logout+jwt"):
        raise _fail(code, "typ header is not logout+jwt (§2.4)")
    _registry(claims, code, now=now, leeway=settings.leeway,
              iss={"essential": True, "value": settings.issuer}, iat={"essential": True},
              jti={"essential": True}, events={"essential": True})
    if not _audience_ok(claims, settings.client_id):
        raise _fail(code, "aud does not name this client (§2.6 step 3)")
    if float(claims["iat"]) < now - LOGOUT_TOKEN_MAX_AGE - settings.leeway:
        raise _fail(code, "issued too long ago (iat)")
    events = claims.get("events")
    if not isinstance(events, dict) or not isinstance(events.get(BACKCHANNEL_LOGOUT_EVENT), dict):
        raise _fail(code, "events lacks the back-channel logout event (§2.6 step 5)")
    if "nonce" in claims:
        raise _fail(code, "a logout token must not contain nonce (§2.6 step 6)")
    sub, sid = claims.get("sub"), claims.get("sid")
    if not isinstance(sub, str) and not isinstance(sid, str):
        raise _fail(code, "neither sub nor sid (§2.6 step 4)")
    return LogoutToken(issuer=str(claims["iss"]), subject=sub if isinstance(sub, str) else None,
                       sid=sid if isinstance(sid, str) else None, jti=str(claims["jti"]),
                       issued_at=float(claims["iat"]))
