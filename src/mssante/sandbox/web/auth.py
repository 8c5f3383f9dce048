"""Webmail login and logout.

* BAL PER/ORG: the authorization code flow with PKCE (RFC 6749 §4.1, RFC 7636) against the
  sandbox's mock Pro Santé Connect, driven by :class:`mssante.psc.PSCClient` with the
  sandbox's own client (``mssante-sandbox``) and the redirect URI ``http://127.0.0.1:<port>/callback``
  (the registered loopback URI, any port: RFC 8252 §7.3). The ID token's ``preferred_username``
  (idNat_PS) decides which BALs open: the PER BAL it owns, the ORG BALs it holds.
* BAL APP: the user picks the BAL. A real LPS proves an APP BAL with the structure's IGC Santé
  certificate; the webmail runs inside the operator, which trusts itself here, and the page says so.
"""

from __future__ import annotations

import contextlib
from typing import Final

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from mssante._i18n import N_, gettext
from mssante.errors import MssanteError, PSCError
from mssante.psc import PSCClient, PSCSettings
from mssante.sandbox.web.context import WebContext
from mssante.sandbox.web.sessions import LOGIN_COOKIE, SESSION_COOKIE, WebSession

__all__ = ["AuthPages", "mailbox_url"]

CALLBACK_PATH: Final = "/callback"


def mailbox_url(address: str, folder: str = "INBOX") -> str:
    """The webmail URL of a BAL's folder."""
    return f"/mail/{address}/{folder}"


class AuthPages:
    """Home, login (PSC or APP), PSC callback and logout."""

    def __init__(self, ctx: WebContext) -> None:
        """Use ``ctx``; the PSC client is created at the first PSC login."""
        self.ctx = ctx
        self._psc: PSCClient | None = None

    def psc(self) -> PSCClient:
        """The webmail's PSC relying party, on the sandbox's own client registration.

        Raises:
            ConfigError: ``sandbox.json`` has no PSC client yet.
        """
        if self._psc is None:
            self._psc = PSCClient(PSCSettings.from_sandbox(self.ctx.sandbox.info))
        return self._psc

    async def aclose(self) -> None:
        """Close the PSC client's connections."""
        if self._psc is not None:
            await self._psc.aclose()
            self._psc = None

    def _start(self, session: WebSession, target: str) -> Response:
        response = RedirectResponse(target, 303)
        response.set_cookie(SESSION_COOKIE, session.id, path="/", httponly=True, samesite="lax")
        return response

    # -- pages ---------------------------------------------------------------------------------
    async def home(self, request: Request) -> Response:
        """``GET /``: the login choices, or the first BAL of a logged-in user.

        Raises:
            LoginRequired, Forbidden, NotFound, StoreUnavailable, UsageError: French pages (:func:`html_errors`).
        """
        session = self.ctx.session(request)
        if session is not None and session.bals:
            return RedirectResponse(mailbox_url(self._spelled(session.bals[0])), 303)
        cfg = self.ctx.sandbox.config
        pros = {p.national_id: f"{p.given_name} {p.family_name}" for p in cfg.professionals}
        structures = {s.national_id: s.name for s in cfg.structures}
        bals = [{"address": b.address, "kind": b.kind, "holders": [pros.get(h, h) for h in b.holders],
                 "structure": structures.get(b.structure_id or "", "")} for b in cfg.bals]
        return self.ctx.render(request, "home.html", bals=bals, info=self.ctx.sandbox.info,
                               store=self.ctx.mail.available)

    def _spelled(self, address: str) -> str:
        bal = self.ctx.sandbox.config.bal(address)
        return bal.address if bal else address

    async def login_psc(self, request: Request) -> Response:
        """``POST /login/psc``: start the PSC authorization code flow (PKCE S256).

        Raises:
            LoginRequired, Forbidden, NotFound, StoreUnavailable, UsageError: French pages (:func:`html_errors`).
        """
        base = self.ctx.base_url(request)
        if f"{request.url.scheme}://{request.url.netloc}" != base:
            return RedirectResponse(base + "/", 303)  # the PSC callback comes back to 127.0.0.1: cookies live there
        # prompt=login: always show the login page, so one can switch professionals (OIDC Core §3.1.2.1).
        url, pending = await self.psc().begin_authorization(base + CALLBACK_PATH, prompt="login")
        login_id = self.ctx.sessions.start_login(pending)
        response = RedirectResponse(url, 303)
        response.set_cookie(LOGIN_COOKIE, login_id, path=CALLBACK_PATH, httponly=True, samesite="lax", max_age=600)
        return response

    async def callback(self, request: Request) -> Response:
        """``GET /callback``: redeem the code, open the webmail session on the professional's BALs.

        Raises:
            LoginRequired, Forbidden, NotFound, StoreUnavailable, UsageError: French pages (:func:`html_errors`).
        """
        pending = self.ctx.sessions.take_login(request.cookies.get(LOGIN_COOKIE))
        if pending is None:
            return self.ctx.message_page(request, 400, N_("Login expired"),
                                         N_("This login was not started from this browser, or it expired. "
                                            "Start again from the home page."))
        try:
            tokens = await self.psc().complete_authorization(pending.request, str(request.url))
        except PSCError as exc:
            if exc.oauth_error == "access_denied":
                return self.ctx.message_page(request, 403, N_("Login cancelled"),
                                             N_("The Pro Santé Connect login was cancelled."))
            return self.ctx.message_page(request, 400, N_("Login refused"),
                                         gettext("Pro Santé Connect: {message}").format(message=exc.message))
        national_id = str(tokens.id_claims.get("preferred_username", ""))
        cfg = self.ctx.sandbox.config
        pro = cfg.professional(national_id)
        bals = [b.address for b in cfg.bals if b.kind in ("PER", "ORG") and national_id in b.holders]
        if pro is None or not bals:
            return self.ctx.message_page(request, 403, N_("No BAL"),
                                         N_("This professional holds no BAL of the sandbox."))
        session = self.ctx.sessions.create(bals=bals, who=f"{pro.given_name} {pro.family_name}", method="psc",
                                           national_id=national_id, tokens=tokens)
        response = self._start(session, mailbox_url(bals[0]))
        response.delete_cookie(LOGIN_COOKIE, path=CALLBACK_PATH)
        return response

    async def login_app(self, request: Request) -> Response:
        """``POST /login/app``: open an APP BAL (the sandbox trusts itself for these).

        Raises:
            LoginRequired, Forbidden, NotFound, StoreUnavailable, UsageError: French pages (:func:`html_errors`).
        """
        form = await request.form()
        address = str(form.get("bal", ""))
        bal = self.ctx.sandbox.config.bal(address)
        if bal is None or bal.kind != "APP":
            return self.ctx.message_page(request, 400, N_("Unknown BAL"),
                                         N_("Choose an application BAL from the list."))
        structure = self.ctx.sandbox.config.structure(bal.structure_id or "")
        who = f"Application — {structure.name if structure else bal.structure_id}"
        session = self.ctx.sessions.create(bals=[bal.address], who=who, method="app")
        return self._start(session, mailbox_url(bal.address))

    async def logout(self, request: Request) -> Response:
        """``POST /logout``: end the webmail session (and revoke its PSC refresh token).

        Raises:
            LoginRequired, Forbidden, NotFound, StoreUnavailable, UsageError: French pages (:func:`html_errors`).
        """
        session = self.ctx.session(request)
        if session is not None:
            form = await request.form()
            self.ctx.check_csrf(session, form.get("csrf"))
            self.ctx.sessions.end(session.id)
            if session.tokens is not None and session.tokens.refresh_token is not None:
                with contextlib.suppress(MssanteError):
                    await self.psc().revoke(session.tokens.refresh_token)
        response = RedirectResponse("/", 303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response
