"""What every webmail page shares: templates, the session lookup, CSRF, access checks, errors, language.

Pages are Jinja2 templates with auto-escaping on; nothing from a message is ever marked safe.
Every answer carries a strict Content-Security-Policy (scripts and styles from this origin
only, no frames, no plugins), so even a slip in a template cannot run injected script.

Every text of the pages comes from the message catalogue (:mod:`mssante._i18n`, Jinja's i18n
extension). The webmail speaks French unless the reader chose English: ``?lang=en`` (or
``?lang=fr``) on any page switches and is remembered in the ``mssante_lang`` cookie; the switch
link in the banner does the same. The browser's ``Accept-Language`` is deliberately not
consulted: the sandbox imitates a French operator, and French is its default for everyone.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote, urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from mssante import _i18n
from mssante._i18n import N_, Lang, parse_lang, use
from mssante.errors import MssanteError, UsageError
from mssante.message import DSNReport, MDNReport
from mssante.sandbox.api.events import EventHub
from mssante.sandbox.api.messages import FOLDERS, Mailboxes, NotFound, StoreUnavailable
from mssante.sandbox.web.cda_view import format_hl7
from mssante.sandbox.web.conformance import page_words, status_label, verdict_label
from mssante.sandbox.web.sessions import SESSION_COOKIE, SessionStore, WebSession

if TYPE_CHECKING:
    from mssante.sandbox.services import SandboxServices

__all__ = ["FOLDER_LABELS", "LANG_COOKIE", "Forbidden", "LoginRequired", "WebContext", "html_errors", "request_lang"]

log = logging.getLogger(__name__)

#: Names of the folders (RFC 6154 special uses), catalogue ids: pages show them with ``_()``.
FOLDER_LABELS: Final = {"INBOX": N_("Inbox"), "Sent": N_("Sent"), "Drafts": N_("Drafts"), "Trash": N_("Trash")}
_KIND_LABELS: Final = {"PER": N_("Personal BAL"), "ORG": N_("Organisational BAL"), "APP": N_("Application BAL")}
_SEVERITY: Final = {"error": N_("error"), "warning": N_("warning"), "info": N_("info")}
#: The cookie that remembers the reader's language choice (``fr`` or ``en``).
LANG_COOKIE: Final = "mssante_lang"
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class LoginRequired(UsageError):
    """No webmail session: the browser goes to the home page."""

    error = "login_required"


class Forbidden(UsageError):
    """The session may not open this BAL, or the CSRF token is wrong (HTTP 403)."""

    error = "forbidden"


def request_lang(request: Request) -> Lang:
    """The page language: ``?lang=``, else the ``mssante_lang`` cookie, else French."""
    for value in (request.query_params.get("lang"), request.cookies.get(LANG_COOKIE)):
        lang = parse_lang(value)
        if lang is not None:
            return lang
    return _i18n.DEFAULT_LANG


def _decimal(value: float) -> str:
    text = f"{value:.1f}"
    return text.replace(".", ",") if _i18n.current().lang == "fr" else text


def _size(value: int) -> str:
    if value < 1024:
        return _i18n.gettext("{n} B").format(n=value)
    if value < 1024 * 1024:
        return _i18n.gettext("{n} KB").format(n=_decimal(value / 1024))
    return _i18n.gettext("{n} MB").format(n=_decimal(value / (1024 * 1024)))


def _when(value: datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone().strftime(_i18n.gettext("%m/%d/%Y %H:%M"))


def _severity(severity: str) -> str:
    return _i18n.gettext(_SEVERITY[severity]) if severity in _SEVERITY else severity


def _report_kind(report: object) -> str:
    return "mdn" if isinstance(report, MDNReport) else "dsn" if isinstance(report, DSNReport) else ""


def _epoch(value: float | None) -> str:
    if value is None:
        return ""
    return datetime.fromtimestamp(value).astimezone().strftime(_i18n.gettext("%m/%d/%Y %H:%M:%S"))


class WebContext:
    """Shared state of the webmail pages."""

    def __init__(self, sandbox: SandboxServices, mailboxes: Mailboxes, hub: EventHub) -> None:
        """Load the templates."""
        self.sandbox = sandbox
        self.mail = mailboxes
        self.hub = hub
        self.sessions = SessionStore()
        env = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                          autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True,
                          extensions=["jinja2.ext.i18n"])
        env.policies["ext.i18n.trimmed"] = True  # the extractor reads the blocks the same way (_i18n._extract)
        env.install_gettext_callables(  # type: ignore[attr-defined]  # added by the i18n extension
            _i18n.gettext, _i18n.ngettext, newstyle=True,
            pgettext=lambda context, message: _i18n.current().pgettext(context, message))
        env.filters.update(size=_size, when=_when, epoch=_epoch, hl7=format_hl7, q=lambda v: quote(str(v), safe="@"))
        env.globals.update(FOLDERS=FOLDERS, FOLDER_LABELS=FOLDER_LABELS, KIND_LABELS=_KIND_LABELS,
                           report_kind=_report_kind, status_label=status_label,
                           verdict_label=verdict_label, conformance_words=page_words,
                           severity=_severity, finding=lambda message: _i18n.current().finding(message))
        self.env = env

    # -- rendering ----------------------------------------------------------------------------
    def render(self, request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        """Render ``template`` with the common context (session, domain, CSRF token, language)."""
        session = context.pop("session", None) or self.session(request)
        lang = request_lang(request)
        other: Lang = "en" if lang == "fr" else "fr"
        # The switch reloads this page in the other language; the answer to a form (POST) cannot be
        # reloaded by a link, so there it leads to the home page.
        if request.method == "GET":
            query = {k: v for k, v in request.query_params.items() if k != "lang"} | {"lang": other}
            switch = f"{request.url.path}?{urlencode(query)}"
        else:
            switch = f"/?lang={other}"
        with use(lang):
            html = self.env.get_template(template).render(
                session=session, csrf=session.csrf if session else "", domain=self.sandbox.config.domain,
                request_path=request.url.path, lang=lang, other_lang=other,
                lang_switch=switch, **context)
        return HTMLResponse(html, status, headers=SECURITY_HEADERS)

    def message_page(self, request: Request, status: int, title: str, text: str) -> HTMLResponse:
        """A page that only says something (errors, confirmations); ``title``/``text`` are catalogue ids."""
        with use(request_lang(request)):
            title, text = _i18n.gettext(title), _i18n.gettext(text)
        return self.render(request, "message.html", status, title=title, text=text)

    # -- sessions and access ------------------------------------------------------------------
    def session(self, request: Request) -> WebSession | None:
        """The browser's live session, if any."""
        return self.sessions.get(request.cookies.get(SESSION_COOKIE))

    def require(self, request: Request, address: str | None = None) -> WebSession:
        """The session, which must exist and (when given) may open BAL ``address``.

        Raises:
            LoginRequired: no session.
            Forbidden: the session may not open ``address``.
        """
        session = self.session(request)
        if session is None:
            raise LoginRequired("please log in")
        if address is not None and not session.may_open(address):
            raise Forbidden(f"this session may not open {address}")
        return session

    @staticmethod
    def check_csrf(session: WebSession, token: object) -> None:
        """Compare the form's (or ``X-CSRF-Token`` header's) token with the session's.

        Raises:
            Forbidden: missing or different token.
        """
        if not isinstance(token, str) or not secrets.compare_digest(token, session.csrf):
            raise Forbidden("invalid or missing CSRF token")

    def base_url(self, request: Request) -> str:
        """The sandbox's own base URL (``http://127.0.0.1:<port>``), as published in ``sandbox.json``."""
        published = self.sandbox.info.get("webmail_url")
        if isinstance(published, str) and published:
            return published.rstrip("/")
        return f"{request.url.scheme}://{request.url.netloc}"


def html_errors(ctx: WebContext, handler: Callable[[Request], Awaitable[Response]]
                ) -> Callable[[Request], Awaitable[Response]]:
    """Wrap a page handler: in the reader's language, our errors become pages, bugs a 500 page without traceback.

    A ``?lang=`` choice is remembered in the ``mssante_lang`` cookie.
    """

    async def guarded(request: Request) -> Response:
        with use(request_lang(request)):
            response = await _answer(request)
        chosen = parse_lang(request.query_params.get("lang"))
        if chosen is not None:
            response.set_cookie(LANG_COOKIE, chosen, max_age=365 * 86400, path="/", samesite="lax")
        return response

    async def _answer(request: Request) -> Response:
        try:
            return await handler(request)
        except LoginRequired:
            return RedirectResponse("/", 303)
        except Forbidden:
            return ctx.message_page(request, 403, N_("Access denied"),
                                    N_("Your session does not give access to this page. Log in again if needed."))
        except NotFound:
            return ctx.message_page(request, 404, N_("Not found"),
                                    N_("This mailbox, folder, message or attachment does not exist."))
        except StoreUnavailable:
            return ctx.message_page(request, 503, N_("Mailboxes unavailable"),
                                    N_("The sandbox runs without message storage (IMAP/SMTP fronts stopped)."))
        except MssanteError as exc:
            return ctx.message_page(request, 400, N_("Request refused"), exc.message)
        except HTTPException:  # Starlette's own 4xx (a malformed form): a page from the app's handler
            raise
        except Exception:
            log.exception("webmail failure on %s %s", request.method, request.url.path)
            return ctx.message_page(request, 500, N_("Unexpected error"),
                                    N_("The sandbox met an error; the details are in its log."))

    return guarded
