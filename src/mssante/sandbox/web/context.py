"""What every webmail page shares: templates, the session lookup, CSRF, access checks, errors.

Pages are Jinja2 templates with auto-escaping on; nothing from a message is ever marked safe.
Every answer carries a strict Content-Security-Policy (scripts and styles from this origin
only, no frames, no plugins), so even a slip in a template cannot run injected script.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from mssante.errors import MssanteError, UsageError
from mssante.message import DSNReport, MDNReport
from mssante.sandbox.api.events import EventHub
from mssante.sandbox.api.messages import FOLDERS, Mailboxes, NotFound, StoreUnavailable
from mssante.sandbox.web.cda_view import format_hl7
from mssante.sandbox.web.sessions import SESSION_COOKIE, SessionStore, WebSession

if TYPE_CHECKING:
    from mssante.sandbox.services import SandboxServices

__all__ = ["FOLDER_LABELS", "Forbidden", "LoginRequired", "WebContext", "html_errors"]

log = logging.getLogger(__name__)

#: French names of the folders (RFC 6154 special uses).
FOLDER_LABELS: Final = {"INBOX": "Boîte de réception", "Sent": "Envoyés", "Drafts": "Brouillons", "Trash": "Corbeille"}
_KIND_LABELS: Final = {"PER": "BAL personnelle", "ORG": "BAL organisationnelle", "APP": "BAL applicative"}
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


def _size(value: int) -> str:
    if value < 1024:
        return f"{value} o"
    if value < 1024 * 1024:
        return f"{value / 1024:.1f} Ko".replace(".", ",")
    return f"{value / (1024 * 1024):.1f} Mo".replace(".", ",")


def _when(value: datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone().strftime("%d/%m/%Y %H:%M")


def _report_kind(report: object) -> str:
    return "mdn" if isinstance(report, MDNReport) else "dsn" if isinstance(report, DSNReport) else ""


def _epoch(value: float | None) -> str:
    if value is None:
        return ""
    return datetime.fromtimestamp(value).astimezone().strftime("%d/%m/%Y %H:%M:%S")


class WebContext:
    """Shared state of the webmail pages."""

    def __init__(self, sandbox: SandboxServices, mailboxes: Mailboxes, hub: EventHub) -> None:
        """Load the templates.

        Raises:
            Nothing.
        """
        self.sandbox = sandbox
        self.mail = mailboxes
        self.hub = hub
        self.sessions = SessionStore()
        env = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                          autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)
        env.filters.update(size=_size, when=_when, epoch=_epoch, hl7=format_hl7, q=lambda v: quote(str(v), safe="@"))
        env.globals.update(FOLDERS=FOLDERS, FOLDER_LABELS=FOLDER_LABELS, KIND_LABELS=_KIND_LABELS,
                           report_kind=_report_kind)
        self.env = env

    # -- rendering ----------------------------------------------------------------------------
    def render(self, request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        """Render ``template`` with the common context (session, domain, CSRF token).

        Raises:
            Nothing.
        """
        session = context.pop("session", None) or self.session(request)
        html = self.env.get_template(template).render(
            session=session, csrf=session.csrf if session else "", domain=self.sandbox.config.domain,
            request_path=request.url.path, **context)
        return HTMLResponse(html, status, headers=SECURITY_HEADERS)

    def message_page(self, request: Request, status: int, title: str, text: str) -> HTMLResponse:
        """A page that only says something (errors, confirmations).

        Raises:
            Nothing.
        """
        return self.render(request, "message.html", status, title=title, text=text)

    # -- sessions and access ------------------------------------------------------------------
    def session(self, request: Request) -> WebSession | None:
        """The browser's live session, if any.

        Raises:
            Nothing.
        """
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
        """The sandbox's own base URL (``http://127.0.0.1:<port>``), as published in ``sandbox.json``.

        Raises:
            Nothing.
        """
        published = self.sandbox.info.get("webmail_url")
        if isinstance(published, str) and published:
            return published.rstrip("/")
        return f"{request.url.scheme}://{request.url.netloc}"


def html_errors(ctx: WebContext, handler: Callable[[Request], Awaitable[Response]]
                ) -> Callable[[Request], Awaitable[Response]]:
    """Wrap a page handler: our errors become French pages, bugs a 500 page without traceback.

    Raises:
        Nothing.
    """

    async def guarded(request: Request) -> Response:
        try:
            return await handler(request)
        except LoginRequired:
            return RedirectResponse("/", 303)
        except Forbidden:
            return ctx.message_page(request, 403, "Accès refusé",
                                    "Votre session ne donne pas accès à cette page. Reconnectez-vous si besoin.")
        except NotFound:
            return ctx.message_page(request, 404, "Introuvable",
                                    "Cette boîte, ce dossier, ce message ou cette pièce jointe n'existe pas.")
        except StoreUnavailable:
            return ctx.message_page(request, 503, "Boîtes indisponibles",
                                    "Le bac à sable fonctionne sans stockage de messages (fronts IMAP/SMTP arrêtés).")
        except MssanteError as exc:
            return ctx.message_page(request, 400, "Requête refusée", exc.message)
        except HTTPException:  # Starlette's own 4xx (a malformed form): a page from the app's handler
            raise
        except Exception:
            log.exception("webmail failure on %s %s", request.method, request.url.path)
            return ctx.message_page(request, 500, "Erreur inattendue",
                                    "Le bac à sable a rencontré une erreur ; le détail est dans son journal.")

    return guarded
