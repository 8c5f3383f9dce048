"""Registered relying parties and the request object handed to Authlib.

Authlib has no type hints; :class:`FormRequest` is where its ``Any`` stops.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from authlib.oauth2.rfc6749 import OAuth2Request

from mssante.sandbox.config import PSCClientConfig
from mssante.sandbox.psc.store import SSOSession

__all__ = ["AUTH_METHODS", "CIBA_GRANT_TYPE", "FormRequest", "SandboxClient", "Subject", "redirect_uri_matches"]

CIBA_GRANT_TYPE = "urn:openid:params:grant-type:ciba"
#: PSC accepts these two secret-based methods (psc-igc.md §1.4); mTLS is out of scope here.
AUTH_METHODS = ["client_secret_basic", "client_secret_post"]
_LOOPBACK_HOSTS = {"127.0.0.1", "::1"}


def redirect_uri_matches(registered: str, requested: str) -> bool:
    """Compare redirect URIs exactly (RFC 6749 §3.1.2.3, OIDC Core §3.1.2.1).

    One exception, RFC 8252 §7.3: for a registered ``http`` loopback IP literal
    (``127.0.0.1`` or ``[::1]``) any port is accepted at request time, because native apps
    bind an ephemeral port. Scheme, host, path and query must still match exactly.
    """
    if requested == registered:
        return True
    try:
        reg, req = urlsplit(registered), urlsplit(requested)
        _ = req.port  # raises ValueError on a malformed port
    except ValueError:
        return False
    if reg.scheme != "http" or reg.hostname not in _LOOPBACK_HOSTS:
        return False
    # Same loopback literal, path and query; any port; no fragment (RFC 6749 §3.1.2) nor userinfo.
    return (req.scheme, req.hostname, req.path, req.query, req.fragment, req.username) == (
        reg.scheme, reg.hostname, reg.path, reg.query, "", None,
    )


class SandboxClient:
    """A registered relying party, seen by Authlib through its ClientMixin methods."""

    def __init__(self, config: PSCClientConfig) -> None:
        self.config = config
        self.client_id = config.client_id

    def __repr__(self) -> str:  # never show the secret
        return f"SandboxClient({self.client_id!r})"

    def get_client_id(self) -> str:
        """Return the client id."""
        return self.client_id

    def get_default_redirect_uri(self) -> None:
        """Return None: OIDC Core §3.1.2.1 makes ``redirect_uri`` required."""
        return None

    def get_allowed_scope(self, scope: str | None) -> str:
        """Return the requested scope (PSC's own rules are checked by the grant)."""
        return scope or ""

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        """Tell whether ``redirect_uri`` is registered (with the RFC 8252 loopback rule)."""
        return any(redirect_uri_matches(r, redirect_uri) for r in self.config.redirect_uris)

    def check_client_secret(self, client_secret: str) -> bool:
        """Compare the secret in constant time."""
        return hmac.compare_digest(client_secret.encode(), self.config.client_secret.encode())

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        """Allow client_secret_basic and client_secret_post on every endpoint."""
        return method in AUTH_METHODS

    def check_response_type(self, response_type: str) -> bool:
        """Only the authorization code flow is implemented."""
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        """Code flow needs redirect URIs; CIBA must be enabled per client (psc-igc.md §1.6)."""
        if grant_type == "authorization_code":
            return bool(self.config.redirect_uris)
        if grant_type == CIBA_GRANT_TYPE:
            return self.config.ciba
        return grant_type == "refresh_token"


@dataclass
class Subject:
    """What Authlib calls the "user": an SSO session, plus the grant once tokens are due."""

    session: SSOSession
    grant_id: str | None = None


class _Payload:
    def __init__(self, data: dict[str, str], datalist: dict[str, list[str]]) -> None:
        self.data = data
        self.datalist = datalist

    client_id = property(lambda self: self.data.get("client_id"))
    response_type = property(lambda self: self.data.get("response_type"))
    grant_type = property(lambda self: self.data.get("grant_type"))
    redirect_uri = property(lambda self: self.data.get("redirect_uri"))
    scope = property(lambda self: self.data.get("scope"))
    state = property(lambda self: self.data.get("state"))


class FormRequest(OAuth2Request):  # type: ignore[misc]
    """An Authlib request built from parameters the Starlette handler already parsed."""

    def __init__(self, method: str, uri: str, headers: Mapping[str, str], params: list[tuple[str, str]]) -> None:
        super().__init__(method, uri, headers=headers)
        datalist: dict[str, list[str]] = {}
        for name, value in params:
            datalist.setdefault(name, []).append(value)
        self._data = {name: values[0] for name, values in datalist.items()}
        self.payload = _Payload(self._data, datalist)

    @property
    def form(self) -> dict[str, str]:
        """The parameters (query for GET, body for POST)."""
        return self._data

    @property
    def args(self) -> dict[str, str]:
        """Same as :attr:`form`."""
        return self._data
