"""Starlette application of the mock PSC: the realm's HTTP endpoints at their real paths.

Paths are those of psc-igc.md §1.1 under the issuer's path (``/auth/realms/esante-wallet``);
the authorization endpoint, which lives on the wallet host at real PSC, is served at
``{issuer}/protocol/openid-connect/auth`` on the same origin.

Every handler runs inside :func:`_guard`: the ``unavailable`` switch answers 503
``temporarily_unavailable``; any unexpected exception is logged (type and path only, never a
token) and becomes a 400 ``invalid_request`` JSON answer: the mock never answers 500.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

from authlib.oauth2 import OAuth2Error
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mssante._asgi_guard import ASGIApp, BodyLimit, Scope
from mssante.errors import TokenRejected
from mssante.sandbox.psc.claims import userinfo
from mssante.sandbox.psc.clients import FormRequest
from mssante.sandbox.psc.discovery import ENDPOINTS, discovery_document
from mssante.sandbox.psc.keys import public_jwks
from mssante.sandbox.psc.oauth import PSCAuthorizationServer
from mssante.sandbox.psc.realm import Realm

__all__ = ["MAX_BODY", "Handler", "PSCWebApp", "json_error", "read_params", "to_response"]

log = logging.getLogger("mssante.sandbox.psc")
Handler = Callable[[Request], Awaitable[Response]]
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
#: RFC 6749 Appendix A: every OAuth parameter is ASCII without control characters (VSCHAR, NQCHAR,
#: URI-reference...); the values Authlib repeats in an ``error_description`` must also fit §5.2's
#: %x20-21 / %x23-5B / %x5D-7E, else it raises ValueError instead of answering.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SYNTAX = {
    "response_type": re.compile(r"[A-Za-z0-9_]+( [A-Za-z0-9_]+)*"),  # A.3 response-type
    "grant_type": re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+"),  # A.10 grant-name / URI-reference
    "redirect_uri": re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+"),  # A.6 URI-reference (RFC 3986: no quote, no backslash)
    "token_type_hint": re.compile(r"[A-Za-z0-9_.-]+"),  # RFC 7009 §2.1, RFC 7662 §2.1
}
_MAX_FIELDS = 50
#: Request bodies: OAuth forms are a few hundred bytes (a CIBA request with its binding message).
MAX_BODY = 64 * 1024


def json_error(status: int, error: str, description: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """Return an OAuth error JSON body (RFC 6749 §5.2)."""
    body = {"error": error, "error_description": description}
    return JSONResponse(body, status, headers={**_NO_STORE, **(headers or {})})


def to_response(result: tuple[int, Any, list[tuple[str, str]]] | None) -> Response:
    """Turn an Authlib (status, body, headers) triple into a Starlette response."""
    if result is None:
        return Response(status_code=204)
    status, body, header_list = result
    headers = {k: v for k, v in header_list if k.lower() != "content-type"}
    if isinstance(body, dict):
        return JSONResponse(body, status, headers=headers)
    return Response(body or "", status, headers=headers)


async def read_params(request: Request) -> list[tuple[str, str]]:
    """Return the request parameters: the query for GET, the urlencoded body for POST.

    Raises:
        HTTPException: 400 for a POST that is not ``application/x-www-form-urlencoded``
            (RFC 6749 §3.2) or carries a file, for too many parameters, and for a value
            outside its RFC 6749 Appendix A syntax.
    """
    if request.method != "POST":
        items = list(request.query_params.multi_items())
    else:
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/x-www-form-urlencoded":
            raise HTTPException(400, "the body must be application/x-www-form-urlencoded")
        form = await request.form(max_fields=_MAX_FIELDS)
        items = []
        for name, value in form.multi_items():
            if not isinstance(value, str):
                raise HTTPException(400, "files are not accepted")
            items.append((name, value))
    if len(items) > _MAX_FIELDS:
        raise HTTPException(400, "too many parameters")
    for name, value in items:
        syntax = _SYNTAX.get(name)
        if _CONTROL.search(name) or _CONTROL.search(value) or (syntax and not syntax.fullmatch(value)):
            raise HTTPException(400, f"parameter {_printable(name)} is malformed (RFC 6749 Appendix A)")
    return items


def _printable(name: str) -> str:
    """A parameter name fit for an error description (RFC 6749 §5.2 characters, 40 at most)."""
    return "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "?" for c in name[:40])


async def _refused(request: Request, exc: Exception) -> Response:
    """Starlette's own refusals (unknown path, wrong method) as OAuth-style JSON errors."""
    status = exc.status_code if isinstance(exc, HTTPException) and 400 <= exc.status_code < 500 else 400
    code = {404: "not_found", 405: "method_not_allowed"}.get(status, "invalid_request")
    headers = dict(exc.headers) if isinstance(exc, HTTPException) and exc.headers else None
    return json_error(status, code, "no such endpoint or method" if status in (404, 405) else "invalid request",
                      headers)


def _too_large(scope: Scope, status: int, message: str) -> ASGIApp:
    return json_error(status, "invalid_request", message)


class PSCWebApp:
    """Builds the Starlette app; handlers delegate to the realm and the Authlib server."""

    def __init__(
        self,
        realm: Realm,
        server: PSCAuthorizationServer,
        *,
        is_unavailable: Callable[[], bool],
        extra_routes: Sequence[tuple[str, Handler, list[str]]],
    ) -> None:
        self.realm = realm
        self.server = server
        self.is_unavailable = is_unavailable
        self.prefix = urlsplit(realm.issuer).path.rstrip("/")
        routes = [
            (".well-known/openid-configuration", self.discovery, ["GET"]),
            (".well-known/wallet-openid-configuration", self.discovery, ["GET"]),
            (ENDPOINTS["jwks_uri"], self.certs, ["GET"]),
            (ENDPOINTS["token_endpoint"], self.token, ["POST"]),
            (ENDPOINTS["introspection_endpoint"], self.introspect, ["POST"]),
            (ENDPOINTS["revocation_endpoint"], self.revoke, ["POST"]),
            (ENDPOINTS["userinfo_endpoint"], self.userinfo, ["GET", "POST"]),
            (ENDPOINTS["backchannel_authentication_endpoint"], self.ciba, ["POST"]),
            *extra_routes,
        ]
        self.starlette = Starlette(
            routes=[Route(f"{self.prefix}/{path}", self._guard(h), methods=m) for path, h, m in routes],
            exception_handlers={HTTPException: _refused},
        )
        self.app: ASGIApp = BodyLimit(self.starlette, limit=MAX_BODY, refuse=_too_large)

    def endpoint_uri(self, key: str) -> str:
        """Return the absolute URL of a discovery endpoint key, e.g. ``token_endpoint``."""
        return f"{self.realm.issuer}/{ENDPOINTS[key]}"

    def _guard(self, handler: Handler) -> Handler:
        async def guarded(request: Request) -> Response:
            if self.is_unavailable():
                return json_error(503, "temporarily_unavailable", "the mock PSC is switched off",
                                  {"Retry-After": "5"})
            try:
                return await handler(request)
            except HTTPException as exc:
                status = exc.status_code if 400 <= exc.status_code < 500 else 400
                return json_error(status, "invalid_request", str(exc.detail))
            except OAuth2Error as exc:
                return to_response(exc())
            except Exception as exc:  # never a 500: log the type, not the data (may hold tokens)
                log.error("mock PSC: unexpected %s on %s", type(exc).__name__, request.url.path)
                return json_error(400, "invalid_request", "the request could not be processed")

        guarded.__name__ = handler.__name__
        return guarded

    async def _oauth_request(self, request: Request, key: str) -> FormRequest:
        params = await read_params(request)
        names = [name for name, _ in params]
        if len(names) != len(set(names)):  # RFC 6749 §3.2: no parameter more than once
            raise HTTPException(400, "a parameter is repeated")
        return FormRequest(request.method, self.endpoint_uri(key), request.headers, params)

    # -- endpoints --------------------------------------------------------------------------
    async def discovery(self, request: Request) -> Response:
        """Discovery document (OIDC Discovery §4; PSC's wallet-openid-configuration, §1.2)."""
        return JSONResponse(discovery_document(self.realm))

    async def certs(self, request: Request) -> Response:
        """JWKS (RFC 7517 §5)."""
        return JSONResponse(public_jwks(self.realm.tokens.key))

    async def token(self, request: Request) -> Response:
        """Token endpoint (RFC 6749 §3.2): code, refresh_token and CIBA grants."""
        req = await self._oauth_request(request, "token_endpoint")
        return to_response(self.server.create_token_response(req))

    async def introspect(self, request: Request) -> Response:
        """Introspection (RFC 7662 §2), client authenticated."""
        req = await self._oauth_request(request, "introspection_endpoint")
        return to_response(self.server.create_endpoint_response("introspection", req))

    async def revoke(self, request: Request) -> Response:
        """Revocation (RFC 7009 §2)."""
        req = await self._oauth_request(request, "revocation_endpoint")
        return to_response(self.server.create_endpoint_response("revocation", req))

    async def ciba(self, request: Request) -> Response:
        """Backchannel authentication endpoint, poll mode (CIBA Core §7)."""
        req = await self._oauth_request(request, "backchannel_authentication_endpoint")
        try:
            body = self.server.new_ciba_request(req)
        except OAuth2Error as exc:
            return to_response(exc())
        return JSONResponse(body, headers=_NO_STORE)

    async def userinfo(self, request: Request) -> Response:
        """UserInfo (OIDC Core §5.3) with a Bearer access token (RFC 6750 §2.1)."""
        realm_hint = 'Bearer realm="esante-wallet"'
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            # RFC 6750 §3.1: no error code when the request carries no credentials.
            return Response(status_code=401, headers={"WWW-Authenticate": realm_hint})
        try:
            claims = self.realm.tokens.validate_access_token(token.strip())
        except TokenRejected as exc:
            description = exc.message.replace('"', "'")
            return json_error(401, "invalid_token", exc.message, {
                "WWW-Authenticate": f'{realm_hint}, error="invalid_token", error_description="{description}"'})
        session = self.realm.store.sessions[str(claims["sid"])]
        body = userinfo(self.realm.config, session.professional, session.auth_mode)
        return JSONResponse(body, headers=_NO_STORE)
