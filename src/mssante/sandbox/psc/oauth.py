"""The Authlib authorization server of the mock PSC, plus the CIBA authentication request."""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc6749 import (
    AuthorizationServer,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    UnauthorizedClientError,
)

from mssante.sandbox.psc.clients import AUTH_METHODS, CIBA_GRANT_TYPE, FormRequest, SandboxClient, Subject
from mssante.sandbox.psc.grants import CibaGrant, CodeGrant, RefreshGrant, RequiredS256
from mssante.sandbox.psc.realm import Realm
from mssante.sandbox.psc.store import new_id

__all__ = ["PSCAuthorizationServer"]


class PSCAuthorizationServer(AuthorizationServer):  # type: ignore[misc]
    """Authlib authorization server bound to a :class:`Realm`; responses are (status, body, headers)."""

    def __init__(self, realm: Realm) -> None:
        super().__init__(scopes_supported=list(realm.scopes_supported))
        self.realm = realm
        self._clients = {c.client_id: SandboxClient(c) for c in realm.config.clients}
        self.register_grant(CodeGrant, [RequiredS256(required=True)])
        self.register_grant(RefreshGrant)
        self.register_grant(CibaGrant)
        self.register_token_generator("default", self._generate)

    def query_client(self, client_id: str) -> SandboxClient | None:
        """Return the registered client or None."""
        return self._clients.get(client_id)

    def save_token(self, token: Any, request: Any) -> None:
        """Nothing to do: tokens are recorded when minted."""

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        """No signal system."""

    def create_oauth2_request(self, request: Any) -> Any:
        """Requests are built by the web layer as :class:`FormRequest` already."""
        return request

    def handle_response(self, status: int, body: Any, headers: Any) -> tuple[int, Any, list[tuple[str, str]]]:
        """Return the triple unchanged; the web layer turns it into a Starlette response."""
        return status, body, list(headers)

    def _generate(self, grant_type: str, client: SandboxClient, user: Subject | None = None,
                  scope: str | None = None, expires_in: int | None = None,
                  include_refresh_token: bool = True) -> dict[str, Any]:
        if user is None or user.grant_id is None:
            raise InvalidGrantError("no authorization behind this request")
        live = self.realm.store.live_grant(user.grant_id)
        if live is None:
            raise InvalidGrantError("the session has ended")
        return self.realm.tokens.token_response(*live)

    def new_ciba_request(self, request: FormRequest) -> dict[str, Any]:
        """Handle a backchannel authentication request (CIBA Core §7.1, §7.3).

        Raises:
            authlib.oauth2.OAuth2Error: invalid_client, unauthorized_client, invalid_request,
                invalid_scope, unknown_user_id (as OAuth JSON, never to the caller of the mock).
        """
        client = self.authenticate_client(request, AUTH_METHODS, endpoint="backchannel_authentication")
        if not client.check_grant_type(CIBA_GRANT_TYPE):
            raise UnauthorizedClientError("CIBA is not enabled for this client")
        data = request.payload.data
        if any(len(v) > 1 for v in request.payload.datalist.values()):
            raise InvalidRequestError("repeated parameter")
        try:
            self.realm.check_scope(data.get("scope"))
        except ValueError as exc:
            raise InvalidScopeError(str(exc)) from exc
        if data.get("acr_values") != "eidas1":
            raise InvalidRequestError("acr_values must be eidas1")
        if "login_hint_token" in data or "id_token_hint" in data:
            raise InvalidRequestError("only login_hint (national id) is supported")
        channel = data.get("channel", "MOBILE")
        if channel not in ("CARD", "MOBILE"):  # PSC extension (psc-igc.md §1.6)
            raise InvalidRequestError("channel must be CARD or MOBILE")
        binding = data.get("binding_message", "")
        if len(binding) > 20 or not binding.isprintable():
            raise _UnknownUserOrBinding("invalid_binding_message", "binding_message is too long or not printable")
        professional = self.realm.config.professional(data.get("login_hint", ""))
        if professional is None:
            raise _UnknownUserOrBinding("unknown_user_id", "login_hint is not a known national id")
        return self.realm.start_ciba(client.client_id, professional, data["scope"], channel, new_id())


class _UnknownUserOrBinding(InvalidRequestError):  # type: ignore[misc]
    """CIBA §13 error codes ``unknown_user_id`` and ``invalid_binding_message`` (HTTP 400)."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
