"""Browser-facing endpoints: authorization (login page standing in for CPS / e-CPS) and logout.

The login page is plain HTML in French, usable without JavaScript, and can be driven by a
plain HTTP POST: the authorization parameters travel as hidden fields, plus ``national_id``
(the professional chosen), ``auth_mode`` (``CARD`` or ``MOBILE``) and ``action``
(``login`` or ``cancel``). The mock has no passwords: anyone reaching it may pick any test
professional, which is the point of a sandbox on loopback.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from authlib.oauth2 import OAuth2Error
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from mssante.errors import TokenRejected
from mssante.sandbox.psc.claims import display_name
from mssante.sandbox.psc.clients import FormRequest, Subject
from mssante.sandbox.psc.oauth import PSCAuthorizationServer
from mssante.sandbox.psc.realm import Realm
from mssante.sandbox.psc.store import SSOSession, new_id
from mssante.sandbox.psc.web import read_params, to_response

__all__ = ["COOKIE_NAME", "BrowserPages"]

COOKIE_NAME = "PSC_SANDBOX_SESSION"
_LOGIN_FIELDS = {"national_id", "auth_mode", "action"}
_AUTH_MODES = {"CARD": "Carte CPS (lecteur de carte)", "MOBILE": "e-CPS (application mobile)"}
_templates = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
)


class _LoginRequired(OAuth2Error):  # type: ignore[misc]
    error = "login_required"  # OIDC Core §3.1.2.6, for prompt=none without a session


class BrowserPages:
    """The authorization and end-session endpoints."""

    def __init__(
        self, realm: Realm, server: PSCAuthorizationServer, end_sessions: Callable[[list[str]], Awaitable[int]]
    ) -> None:
        self.realm = realm
        self.server = server
        self.end_sessions = end_sessions
        self.path = urlsplit(realm.issuer).path or "/"
        self.secure = realm.issuer.startswith("https://")

    # -- helpers ------------------------------------------------------------------------------
    def _page(self, template: str, status: int, **context: Any) -> HTMLResponse:
        html = _templates.get_template(template).render(**context)
        return HTMLResponse(html, status, headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY"})

    def _message(self, status: int, title: str, text: str) -> HTMLResponse:
        return self._page("message.html", status, title=title, text=text)

    def _with_iss(self, response: Response) -> Response:
        """Add ``iss`` to an authorization response redirect (RFC 9207 §2)."""
        location = response.headers.get("location")
        if response.status_code == 302 and location:
            parts = urlsplit(location)
            query = urlencode([*parse_qsl(parts.query, keep_blank_values=True), ("iss", self.realm.issuer)])
            response.headers["location"] = urlunsplit(parts._replace(query=query))
        return response

    def _auth_error(self, error: Any) -> Response:
        if error.redirect_uri:  # validated redirect URI: tell the client (RFC 6749 §4.1.2.1)
            return self._with_iss(to_response(error()))
        # Unknown client or unregistered redirect_uri: inform the user, never redirect (§4.1.2.1).
        return self._message(400, "Requête refusée", f"{error.error} : {error.description or ''}")

    def _cookie_session(self, request: Request) -> SSOSession | None:
        sid = self.realm.store.cookies.get(request.cookies.get(COOKIE_NAME, ""))
        return None if sid is None else self.realm.store.live_session(sid)

    def _issue_code(self, req: FormRequest, grant: Any, session: SSOSession) -> Response:
        result = self.server.create_authorization_response(request=req, grant_user=Subject(session), grant=grant)
        return self._with_iss(to_response(result))

    def _login_page(self, params: list[tuple[str, str]], client_id: str, status: int = 200,
                    error: str = "") -> HTMLResponse:
        pros = [(p.national_id, display_name(p)) for p in self.realm.config.professionals]
        return self._page(
            "login.html", status, action=f"{self.realm.issuer}/protocol/openid-connect/auth", params=params,
            client_id=client_id, professionals=pros, auth_modes=_AUTH_MODES, error=error,
        )

    # -- authorization endpoint ----------------------------------------------------------------
    async def authorize(self, request: Request) -> Response:
        """Authorization endpoint (RFC 6749 §4.1.1, OIDC Core §3.1.2): GET shows the page, POST logs in."""
        params = await read_params(request)
        oauth_params = [(k, v) for k, v in params if k not in _LOGIN_FIELDS]
        uri = f"{self.realm.issuer}/protocol/openid-connect/auth"
        req = FormRequest(request.method, uri, request.headers, oauth_params)
        try:
            grant = self.server.get_consent_grant(req)
        except OAuth2Error as exc:
            return self._auth_error(exc)
        data = req.payload.data
        prompt = data.get("prompt", "").split()
        if request.method == "GET":
            session = self._cookie_session(request)
            if session is not None and "login" not in prompt:
                return self._issue_code(req, grant, session)  # SSO: the PSC session is still open
            if "none" in prompt:
                return self._auth_error(_LoginRequired(redirect_uri=grant.redirect_uri, state=data.get("state")))
            return self._login_page(oauth_params, data["client_id"])
        form = dict(params)
        if form.get("action") == "cancel":
            result = self.server.create_authorization_response(request=req, grant_user=None, grant=grant)
            return self._with_iss(to_response(result))  # access_denied
        professional = self.realm.config.professional(form.get("national_id", ""))
        auth_mode = form.get("auth_mode", "CARD")
        if professional is None or auth_mode not in _AUTH_MODES:
            return self._login_page(oauth_params, data["client_id"], 400,
                                    "Choisissez un professionnel de santé et un moyen d'authentification.")
        session = self.realm.login(professional, auth_mode)
        response = self._issue_code(req, grant, session)
        cookie = new_id()
        self.realm.store.cookies[cookie] = session.sid
        response.set_cookie(COOKIE_NAME, cookie, path=self.path, httponly=True, samesite="lax", secure=self.secure)
        return response

    # -- end session endpoint -------------------------------------------------------------------
    async def logout(self, request: Request) -> Response:
        """RP-Initiated Logout 1.0 §2-§3: ``id_token_hint``, ``post_logout_redirect_uri``, ``state``."""
        data = dict(await read_params(request))
        client_id = data.get("client_id")
        sid: str | None = None
        if "id_token_hint" in data:
            try:
                # §2: an expired ID token is still a valid hint; signature and issuer are checked.
                claims = self.realm.tokens.decode(data["id_token_hint"], check_exp=False)
            except TokenRejected:
                return self._message(400, "Déconnexion refusée", "id_token_hint invalide.")
            if client_id is not None and client_id != claims.get("aud"):
                return self._message(400, "Déconnexion refusée", "client_id ne correspond pas à id_token_hint.")
            client_id, sid = str(claims.get("aud")), str(claims.get("sid"))
        redirect = data.get("post_logout_redirect_uri")
        if redirect is not None:
            client = self.realm.config.client(client_id or "")
            # §3: the URI must have been registered by the client identified by the hint or client_id.
            if client is None or redirect not in client.post_logout_redirect_uris:
                return self._message(400, "Déconnexion refusée", "post_logout_redirect_uri non enregistrée.")
        if sid is None:
            session = self._cookie_session(request)
            sid = session.sid if session else None
        if sid is not None:
            await self.end_sessions([sid])  # also sends back-channel logout tokens
        if redirect is not None:
            query = [("state", data["state"])] if "state" in data else []
            parts = urlsplit(redirect)
            target = urlunsplit(parts._replace(query=urlencode([*parse_qsl(parts.query), *query])))
            response: Response = RedirectResponse(target, 302)
        else:
            response = self._message(200, "Vous êtes déconnecté", "Votre session Pro Santé Connect est fermée.")
        response.delete_cookie(COOKIE_NAME, path=self.path)
        return response
