"""Authlib grants of the mock PSC: authorization code with mandatory PKCE S256, refresh with
rotation, and CIBA poll mode. Each class here is an Authlib subclass (the ``Any`` boundary).
"""

from __future__ import annotations

from typing import Any, ClassVar

from authlib.oauth2.rfc6749 import (
    AccessDeniedError,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    UnauthorizedClientError,
)
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant, BaseGrant, RefreshTokenGrant, TokenEndpointMixin
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc8628 import AuthorizationPendingError, ExpiredTokenError, SlowDownError

from mssante.sandbox.psc.clients import AUTH_METHODS, CIBA_GRANT_TYPE, SandboxClient, Subject
from mssante.sandbox.psc.realm import Realm
from mssante.sandbox.psc.store import AuthCode, RefreshToken

__all__ = ["CibaGrant", "CodeGrant", "RefreshGrant", "RequiredS256"]


class RequiredS256(CodeChallenge):  # type: ignore[misc]
    """PKCE is mandatory for every client, and only S256 is accepted (RFC 7636 §4.2, RFC 9700 §2.1.1)."""

    SUPPORTED_CODE_CHALLENGE_METHOD: ClassVar[list[str]] = ["S256"]

    def validate_code_challenge(self, grant: Any, redirect_uri: Any) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("code_challenge is required (PKCE S256)")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("code_challenge_method must be S256")
        super().validate_code_challenge(grant, redirect_uri)


class CodeGrant(AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS

    @property
    def realm(self) -> Realm:
        realm: Realm = self.server.realm
        return realm

    def validate_authorization_request(self) -> str:
        redirect_uri: str = super().validate_authorization_request()
        data = self.request.payload.data
        try:
            self.realm.check_scope(data.get("scope"))
        except ValueError as exc:
            raise InvalidScopeError(str(exc), redirect_uri=redirect_uri) from exc
        # acr_values=eidas1 is mandatory and the only level (psc-igc.md §1.3).
        if data.get("acr_values") != "eidas1":
            raise InvalidRequestError("acr_values must be eidas1", redirect_uri=redirect_uri)
        if data.get("response_mode", "query") != "query":
            raise InvalidRequestError("only response_mode=query is supported", redirect_uri=redirect_uri)
        if len(data.get("nonce", "")) > 512 or len(data.get("state", "")) > 2048:
            raise InvalidRequestError("nonce or state is too long", redirect_uri=redirect_uri)
        return redirect_uri

    def save_authorization_code(self, code: str, request: Any) -> None:
        subject: Subject = request.user
        data = request.payload.data
        self.realm.store.codes[code] = AuthCode(
            code=code, client_id=request.client.client_id, redirect_uri=data["redirect_uri"],
            scope=request.scope, nonce=data.get("nonce", ""), code_challenge=data["code_challenge"],
            code_challenge_method=data["code_challenge_method"], sid=subject.session.sid,
            expires_at=self.realm.store.clock() + self.realm.lifetimes.auth_code,
        )

    def query_authorization_code(self, code: str, client: SandboxClient) -> AuthCode | None:
        store = self.realm.store
        with store.lock:
            item = store.codes.get(code)
            if item is None or item.client_id != client.client_id:
                return None
            if item.used:
                # RFC 6749 §4.1.2: a replayed code is refused and the tokens it produced revoked.
                if item.grant_id is not None:
                    store.revoke_grant(item.grant_id)
                return None
            return item if store.clock() < item.expires_at else None

    def delete_authorization_code(self, authorization_code: AuthCode) -> None:
        authorization_code.used = True  # kept (not deleted) to detect replays

    def authenticate_user(self, authorization_code: AuthCode) -> Subject | None:
        store = self.realm.store
        session = store.live_session(authorization_code.sid)
        if session is None:
            return None
        grant = store.new_grant(session, authorization_code.client_id, authorization_code.scope,
                                authorization_code.nonce)
        authorization_code.grant_id = grant.id
        return Subject(session, grant.id)


class RefreshGrant(RefreshTokenGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True  # rotation: each refresh returns a new refresh token

    @property
    def realm(self) -> Realm:
        realm: Realm = self.server.realm
        return realm

    def authenticate_refresh_token(self, refresh_token: str) -> RefreshToken | None:
        store = self.realm.store
        with store.lock:
            known = store.refresh_tokens.get(refresh_token)
            if known is not None and known.used:
                # Reuse of a rotated refresh token: revoke the whole token family
                # (RFC 9700 §4.14.2). The SSO session itself survives for other clients.
                store.revoke_grant(known.grant_id)
                return None
            return store.live_refresh_token(refresh_token)

    def authenticate_user(self, refresh_token: RefreshToken) -> Subject | None:
        live = self.realm.store.live_grant(refresh_token.grant_id)
        if live is None:
            return None
        self.realm.store.touch(live[1])  # a refresh extends the SSO idle window
        return Subject(live[1], live[0].id)

    def revoke_old_credential(self, refresh_token: RefreshToken) -> None:
        refresh_token.used = True


class CibaGrant(BaseGrant, TokenEndpointMixin):  # type: ignore[misc]
    """Token request of CIBA poll mode (CIBA Core §10.1, errors §11)."""

    GRANT_TYPE = CIBA_GRANT_TYPE
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS

    def validate_token_request(self) -> None:
        client = self.authenticate_token_endpoint_client()
        if not client.check_grant_type(CIBA_GRANT_TYPE):
            raise UnauthorizedClientError("CIBA is not enabled for this client")
        auth_req_id = self.request.form.get("auth_req_id")
        if not auth_req_id:
            raise InvalidRequestError("auth_req_id is required")
        self.request.client = client
        self.request.user = self._poll(self.server.realm, auth_req_id, client)

    @staticmethod
    def _poll(realm: Realm, auth_req_id: str, client: SandboxClient) -> Subject:
        store, now = realm.store, realm.store.clock()
        with store.lock:
            req = store.ciba.get(auth_req_id)
            if req is None or req.client_id != client.client_id or req.redeemed:
                raise InvalidGrantError("auth_req_id is invalid")  # CIBA §11
            if now >= req.expires_at:
                raise ExpiredTokenError("the authentication request has expired")
            too_fast = req.last_poll is not None and now - req.last_poll < req.interval
            req.last_poll = now
            if too_fast:
                raise SlowDownError("poll no faster than the interval")
            if now < req.created_at + realm.lifetimes.ciba_approve_delay:
                raise AuthorizationPendingError("the professional has not answered yet")
            if req.professional.ciba == "deny":
                raise AccessDeniedError("the professional refused the request")
            req.redeemed = True
            session = store.new_session(req.professional, req.channel)
            grant = store.new_grant(session, client.client_id, req.scope, nonce="")
            return Subject(session, grant.id)

    def create_token_response(self) -> tuple[int, Any, Any]:
        token = self.generate_token(user=self.request.user, include_refresh_token=True)
        self.save_token(token)
        return 200, token, self.TOKEN_RESPONSE_HEADER
