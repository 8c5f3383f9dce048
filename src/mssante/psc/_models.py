"""Value objects of the relying party: token sets, pending authorization and CIBA requests.

Every token, code verifier, state, nonce and ``auth_req_id`` is a :class:`~mssante.secret.Secret`,
so no repr, str or log line shows one (ECO.1.2.5). Claims of the ID token (names, national id)
are kept out of reprs as well.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal
from urllib.parse import parse_qsl, urlsplit

from mssante.errors import PSCError, RemoteProtocolError, UsageError
from mssante.secret import Secret

__all__ = [
    "AuthorizationRequest", "Channel", "CibaRequest", "LogoutResult", "LogoutToken", "TokenSet", "parse_callback",
]

Channel = Literal["CARD", "MOBILE"]
#: Used when a token answer has no ``expires_in`` (RFC 6749 §5.1 makes it RECOMMENDED only):
#: half of PSC's documented 120 s (psc-igc.md §1.5), so the token is refreshed early.
_DEFAULT_EXPIRES_IN: Final = 60.0


def _text(body: Mapping[str, Any], name: str) -> str | None:
    value = body.get(name)
    return value if isinstance(value, str) and value else None


def _seconds(body: Mapping[str, Any], name: str) -> float | None:
    value = body.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        return None
    return float(value)


@dataclass(frozen=True, kw_only=True)
class TokenSet:
    """The tokens of one token endpoint answer (RFC 6749 §5.1; Keycloak's extra fields).

    Attributes:
        access_token: the PSC access token, opaque to the relying party.
        token_type: ``Bearer``.
        expires_at: when the access token expires (seconds since the epoch, our clock).
        refresh_token: the refresh token, or None.
        refresh_expires_at: when the refresh token (hence the PSC session, for us) expires,
            from Keycloak's ``refresh_expires_in``; None when not given.
        id_token: the raw ID token (for ``id_token_hint``), or None.
        id_claims: the validated ID token claims (empty when there is no ID token).
        session_state: PSC's session id (``sid``), from the answer or the ID token.
        scope: granted scope.
    """

    access_token: Secret
    token_type: str = "Bearer"  # noqa: S105 - a token type, not a secret
    expires_at: float
    refresh_token: Secret | None = None
    refresh_expires_at: float | None = None
    id_token: Secret | None = None
    id_claims: Mapping[str, Any] = field(default_factory=dict, repr=False)
    session_state: str | None = None
    scope: str = ""

    @classmethod
    def from_response(cls, body: Mapping[str, Any], *, now: float, id_claims: Mapping[str, Any] | None = None,
                      previous: TokenSet | None = None) -> TokenSet:
        """Build from a token endpoint JSON answer received at ``now``.

        ``previous`` (on refresh) provides what the answer may omit: the refresh token when not
        rotated (RFC 6749 §6), the ID token and its claims.

        Raises:
            RemoteProtocolError: no ``access_token``, or a ``token_type`` other than Bearer.
        """
        access = _text(body, "access_token")
        if access is None:
            raise RemoteProtocolError("PSC's token answer has no access_token")
        token_type = _text(body, "token_type") or "Bearer"
        if token_type.lower() != "bearer":  # RFC 6749 §7.1: only Bearer is understood here
            raise RemoteProtocolError("PSC's token answer is not a Bearer token")
        expires_in = _seconds(body, "expires_in")
        refresh_in = _seconds(body, "refresh_expires_in")
        refresh = _text(body, "refresh_token")
        id_token = _text(body, "id_token")
        claims = dict(id_claims or {})
        if previous is not None:
            if refresh is None:
                refresh = previous.refresh_token.reveal() if previous.refresh_token else None
                refresh_in = None if previous.refresh_expires_at is None else previous.refresh_expires_at - now
            if id_token is None and previous.id_token is not None:
                id_token, claims = previous.id_token.reveal(), dict(previous.id_claims)
        session_state = _text(body, "session_state") or _text(claims, "sid")
        expires_at = now + (expires_in if expires_in is not None else _DEFAULT_EXPIRES_IN)
        return cls(
            access_token=Secret(access), token_type="Bearer",  # noqa: S106
            expires_at=min(expires_at, jwt_exp(access) or expires_at),
            refresh_token=Secret(refresh) if refresh else None,
            # Keycloak sends refresh_expires_in 0 for offline tokens: no expiry known.
            refresh_expires_at=now + refresh_in if refresh_in else None,
            id_token=Secret(id_token) if id_token else None, id_claims=claims,
            session_state=session_state or (previous.session_state if previous else None),
            scope=_text(body, "scope") or (previous.scope if previous else ""),
        )

    @property
    def national_id(self) -> str | None:
        """The professional's national id (``SubjectNameID``, else ``preferred_username``), if known."""
        return _text(self.id_claims, "SubjectNameID") or _text(self.id_claims, "preferred_username")

    @property
    def subject(self) -> str | None:
        """The ID token's ``sub``, if any."""
        return _text(self.id_claims, "sub")


@dataclass(frozen=True, kw_only=True)
class AuthorizationRequest:
    """A pending authorization code request: keep it server side until the callback.

    It is serialisable (:meth:`to_dict`) for a server-side session store. Its values are
    secrets (the code verifier especially, RFC 7636 §7.1): never log or send them anywhere.

    Attributes:
        state: CSRF binding of the callback (RFC 6749 §10.12).
        nonce: replay binding of the ID token (OIDC Core §3.1.2.1).
        code_verifier: PKCE secret (RFC 7636 §4.1).
        redirect_uri: the redirect URI sent, repeated in the token request (RFC 6749 §4.1.3).
        created_at: when the request was made (seconds since the epoch).
    """

    state: Secret
    nonce: Secret
    code_verifier: Secret
    redirect_uri: str
    created_at: float

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict, **with the secrets in clear**: store it server side only."""
        return {
            "state": self.state.reveal(), "nonce": self.nonce.reveal(), "code_verifier": self.code_verifier.reveal(),
            "redirect_uri": self.redirect_uri, "created_at": self.created_at,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AuthorizationRequest:
        """Rebuild from :meth:`to_dict`'s output.

        Raises:
            UsageError: a field is missing or has the wrong type.
        """
        try:
            texts = {k: data[k] for k in ("state", "nonce", "code_verifier", "redirect_uri")}
            created = float(data["created_at"])
        except (KeyError, TypeError, ValueError) as exc:
            raise UsageError("not a stored AuthorizationRequest") from exc
        if not all(isinstance(v, str) and v for v in texts.values()):
            raise UsageError("not a stored AuthorizationRequest")
        return cls(state=Secret(texts["state"]), nonce=Secret(texts["nonce"]),
                   code_verifier=Secret(texts["code_verifier"]), redirect_uri=texts["redirect_uri"], created_at=created)


@dataclass(kw_only=True)
class CibaRequest:
    """A pending CIBA authentication (CIBA Core §7.3), poll mode.

    Attributes:
        auth_req_id: PSC's request handle (a secret: with the client credentials it yields tokens).
        expires_at: when PSC forgets the request (seconds since the epoch).
        interval: seconds to wait between polls; raised on ``slow_down`` (CIBA Core §11).
        binding_message: the short code shown both in the application and on the e-CPS / CPS
            prompt, so the professional can match them (CIBA Core §7.1).
        channel: ``CARD`` or ``MOBILE`` (PSC extension, psc-igc.md §1.6).
        national_id: the professional asked (``login_hint``).
    """

    auth_req_id: Secret
    expires_at: float
    interval: float
    binding_message: str
    channel: Channel
    national_id: str
    next_poll_at: float = 0.0


@dataclass(frozen=True, kw_only=True)
class LogoutToken:
    """The checked claims of a back-channel logout token (OIDC Back-Channel Logout 1.0 §2.4)."""

    issuer: str
    subject: str | None
    sid: str | None
    jti: str
    issued_at: float


@dataclass(frozen=True, kw_only=True)
class LogoutResult:
    """What :meth:`PSCClient.logout` did.

    Attributes:
        front_channel_url: the end-session URL to redirect the browser to (RP-Initiated Logout
            1.0 §2), holding ``id_token_hint``: a Secret so that it is not logged by mistake.
        revoked: the refresh token was revoked (RFC 7009 §2.2 answer 200).
        ended_at_psc: the server-side end-session call succeeded.
    """

    front_channel_url: Secret | None
    revoked: bool
    ended_at_psc: bool


def parse_callback(callback: str | Mapping[str, str]) -> dict[str, str]:
    """Return the parameters of an authorization callback (URL, query string, or mapping).

    Raises:
        PSCError: (``invalid_callback``) parameters in the fragment, or a repeated parameter.
    """
    if isinstance(callback, Mapping):
        return {str(k): str(v) for k, v in callback.items()}
    parts = urlsplit(callback)
    query = parts.query if (parts.scheme or parts.path.startswith("/") or "?" in callback) else callback
    if parts.fragment and "=" in parts.fragment:  # response_mode=query only (OAuth 2.0 Multiple Response Types)
        raise PSCError("the callback carries parameters in the fragment", oauth_error="invalid_callback")
    pairs = parse_qsl(query, keep_blank_values=True)
    names = [name for name, _ in pairs]
    if len(names) != len(set(names)):  # RFC 6749 §3.1: parameters must not repeat
        raise PSCError("a callback parameter is repeated", oauth_error="invalid_callback")
    return dict(pairs)


def jwt_exp(token: str) -> float | None:
    """The ``exp`` claim of a JWT, read without verification; None for anything else.

    Keycloak (PSC) truncates ``iat`` to the second and sets ``exp = iat + lifespan``, so an
    access token dies up to a second before ``now + expires_in``: :meth:`TokenSet.from_response`
    takes the earlier of the two. The claim is used only to renew in time (RFC 7519 §4.1.4),
    never to trust the token, and a later ``exp`` never extends ``expires_in``.
    """
    parts = token.split(".")
    if len(parts) != 3 or len(parts[1]) > 16_384:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error, RecursionError):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    if isinstance(exp, bool) or not isinstance(exp, int | float) or not math.isfinite(exp):
        return None
    return float(exp)
