"""Authlib introspection (RFC 7662) and revocation (RFC 7009) endpoints for the realm."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7662 import IntrospectionEndpoint

from mssante.errors import TokenRejected
from mssante.sandbox.psc.clients import AUTH_METHODS
from mssante.sandbox.psc.realm import Realm

__all__ = ["RealmIntrospection", "RealmRevocation"]


@dataclass
class _Found:
    """A token found by one of the endpoints, in the shape Authlib expects."""

    payload: dict[str, Any] = field(default_factory=dict)
    client_id: str = ""
    jti: str | None = None
    grant_id: str | None = None

    def is_expired(self) -> bool:
        return False  # liveness is decided by Realm.introspect

    def is_revoked(self) -> bool:
        return False

    def check_client(self, client: Any) -> bool:
        return bool(getattr(client, "client_id", None) == self.client_id)


class RealmIntrospection(IntrospectionEndpoint):  # type: ignore[misc]
    """Introspection with client_secret_basic/post (psc-igc.md §1.5: HTTP Basic documented).

    Any registered client may introspect any token of the realm: ANS services introspect
    tokens issued to other clients (psc-igc.md §1.5, ANS-CTX); every sandbox client counts
    as "habilité".
    """

    CLIENT_AUTH_METHODS = AUTH_METHODS

    def __init__(self, server: Any, realm: Realm) -> None:
        super().__init__(server)
        self.realm = realm

    def query_token(self, token_string: str, token_type_hint: str | None) -> _Found | None:
        payload = self.realm.introspect(token_string)
        return _Found(payload) if payload.get("active") else None

    def check_permission(self, token: _Found, client: Any, request: Any) -> bool:
        return True

    def introspect_token(self, token: _Found) -> dict[str, Any]:
        return token.payload


class RealmRevocation(RevocationEndpoint):  # type: ignore[misc]
    """Revocation: an access token alone, or a refresh token with its whole grant (RFC 7009 §2.1)."""

    CLIENT_AUTH_METHODS = AUTH_METHODS

    def __init__(self, server: Any, realm: Realm) -> None:
        super().__init__(server)
        self.realm = realm

    def query_token(self, token_string: str, token_type_hint: str | None) -> _Found | None:
        try:
            claims = self.realm.tokens.validate_access_token(token_string)
            return _Found(client_id=str(claims.get("azp")), jti=str(claims["jti"]))
        except TokenRejected:
            pass
        rt = self.realm.store.live_refresh_token(token_string)
        if rt is None:
            return None  # RFC 7009 §2.2: invalid tokens are answered 200 as well
        return _Found(client_id=rt.client_id, grant_id=rt.grant_id)

    def revoke_token(self, token: _Found, request: Any) -> None:
        if token.jti is not None:
            self.realm.store.revoke_access_token(token.jti)
        if token.grant_id is not None:
            # RFC 7009 §2.1: revoking a refresh token SHOULD also invalidate the grant's access tokens.
            self.realm.store.revoke_grant(token.grant_id)
