"""The webmail's routes, and its two operator pages: the session journal and conformance results."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from mssante.errors import UsageError
from mssante.sandbox.api.events import EventHub, conformance_feed
from mssante.sandbox.api.messages import Mailboxes
from mssante.sandbox.api.routes import parse_since
from mssante.sandbox.web.auth import CALLBACK_PATH, AuthPages
from mssante.sandbox.web.compose import ComposePages
from mssante.sandbox.web.conformance import live_run, profile_runs
from mssante.sandbox.web.context import WebContext, html_errors
from mssante.sandbox.web.mail import MailPages

if TYPE_CHECKING:
    from mssante.sandbox.services import SandboxServices

__all__ = ["Webmail"]

_STATIC = Path(__file__).parent / "static"


class Webmail:
    """The sandbox webmail (French UI): login, folders, messages, compose, journal, conformance."""

    def __init__(self, sandbox: SandboxServices, mailboxes: Mailboxes, hub: EventHub) -> None:
        """Build the pages over ``mailboxes``; live updates come from ``hub``."""
        self.ctx = WebContext(sandbox, mailboxes, hub)
        self.auth = AuthPages(self.ctx)
        self.mail = MailPages(self.ctx)
        self.compose = ComposePages(self.ctx)

    def routes(self) -> list[BaseRoute]:
        """The webmail routes, to put before the PSC mount."""
        a, m, c = self.auth, self.mail, self.compose
        base = "/mail/{address}"
        message = base + "/{folder}/{uid:int}"
        table: list[tuple[str, Any, list[str]]] = [
            ("/", a.home, ["GET"]),
            ("/login/psc", a.login_psc, ["POST"]),
            ("/login/app", a.login_app, ["POST"]),
            (CALLBACK_PATH, a.callback, ["GET"]),
            ("/logout", a.logout, ["POST"]),
            ("/journal", self.journal, ["GET"]),
            ("/conformance", self.conformance, ["GET"]),
            (base, m.bal_home, ["GET"]),
            (base + "/events", m.events, ["GET"]),
            (base + "/compose", c.form, ["GET"]),
            (base + "/send", c.send, ["POST"]),
            (base + "/{folder}", m.folder, ["GET"]),
            (base + "/{folder}/list", m.folder_list, ["GET"]),
            (message, m.message, ["GET"]),
            (message + "/raw", m.raw, ["GET"]),
            (message + "/attachments/{index:int}", m.attachment, ["GET"]),
            (message + "/xdm/{index:int}/{doc:int}", m.document, ["GET"]),
        ]
        routes: list[BaseRoute] = [Route(p, html_errors(self.ctx, h), methods=ms) for p, h, ms in table]
        routes.append(Route("/favicon.ico", self.favicon, methods=["GET"]))
        routes.append(Mount("/static", app=StaticFiles(directory=_STATIC), name="static"))
        return routes

    async def aclose(self) -> None:
        """Release the PSC client."""
        await self.auth.aclose()
        await self.compose.aclose()

    async def favicon(self, request: Request) -> Response:
        """``GET /favicon.ico``: no icon (204), rather than a 404 in every browser console."""
        return Response(status_code=204)

    async def journal(self, request: Request) -> Response:
        """``GET /journal?bal=&front=&since=``: the operator's session journal, newest first.

        Raises:
            LoginRequired, Forbidden, NotFound, StoreUnavailable, UsageError: French pages (:func:`html_errors`).
        """
        session = self.ctx.session(request)
        q = request.query_params
        bal = q.get("bal") or None
        if bal is not None:
            bal = self.ctx.mail.bal(bal)
        try:
            since = parse_since(q.get("since"))
        except UsageError:
            since = None
        records = self.ctx.sandbox.journal.records(bal=bal, front=q.get("front") or None, since=since)
        fronts = sorted({r.front for r in self.ctx.sandbox.journal})
        return self.ctx.render(request, "journal.html", session=session, records=list(reversed(records))[:500],
                               bal_filter=bal or "", front_filter=q.get("front") or "", fronts=fronts,
                               bals=[b.address for b in self.ctx.sandbox.config.bals])

    async def conformance(self, request: Request) -> Response:
        """``GET /conformance``: the last run of each profile and the run going on (``?fragment=1``: its body).

        Raises:
            LoginRequired, Forbidden, NotFound, StoreUnavailable, UsageError: French pages (:func:`html_errors`).
        """
        feed = conformance_feed(self.ctx.sandbox)
        template = "_conformance.html" if request.query_params.get("fragment") else "conformance.html"
        return self.ctx.render(request, template, runs=profile_runs(self.ctx.sandbox.state_dir),
                               live=live_run(feed.latest_run()), seq=feed.last_seq)
