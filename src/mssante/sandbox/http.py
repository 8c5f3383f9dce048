"""The sandbox's HTTP server: webmail, JSON API, mock PSC, CRL and CA publication.

One uvicorn server on the sandbox's HTTP port serves, in this order of routes:

* ``/crl/<name>`` and ``/ac/<name>``: CRLs and CA certificates of the test PKI (what the
  certificates' CRL distribution points and AIA name);
* ``/api/...``: the JSON API (:mod:`mssante.sandbox.api`, OpenAPI at ``/api/openapi.json``):
  BALs and their messages, journal, faults, live events;
* ``/`` and the webmail pages (:mod:`mssante.sandbox.web`, in French), ``/static/...``;
* ``/annuaire/fhir/...``: the mock Annuaire Santé (:mod:`mssante.sandbox.annuaire`, FHIR R4, API key);
* the mock Pro Santé Connect under its realm path (``/auth/realms/esante-wallet/...``).

Bad input never gets a 500: bodies are bounded (:class:`~mssante._asgi_guard.BodyLimit`: 1 MiB,
40 MiB for a message dropped in through the API, 25 MiB plus a margin for a webmail message),
and what Starlette refuses itself (unknown path, wrong method, malformed form) is answered in
the client's terms: JSON under ``/api`` and the PSC realm, a French page elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from mssante._asgi_guard import ASGIApp, BodyLimit, Scope
from mssante.errors import TransportError
from mssante.sandbox.annuaire import ANNUAIRE_PATH, AnnuaireMock
from mssante.sandbox.api import EventHub, Mailboxes, SandboxAPI
from mssante.sandbox.api.faults import bench_faults
from mssante.sandbox.api.routes import MAX_UPLOAD, error_response
from mssante.sandbox.psc.web import MAX_BODY as PSC_MAX_BODY
from mssante.sandbox.web import Webmail
from mssante.sandbox.web.compose import MAX_ATTACHMENTS

if TYPE_CHECKING:
    from mssante.sandbox.runner import Sandbox

__all__ = ["SandboxHTTP"]

#: Seconds uvicorn waits for open requests (live event streams) when stopping.
_GRACEFUL_SECONDS = 2
#: Request bodies: forms and JSON are small; messages come through two routes.
_MAX_BODY = 1024 * 1024
_SEND = r"/mail/[^/]+/send"  # the one form with attachments (multipart)
_BODY_LIMITS = (
    (r"/api/bals/[^/]+/messages", MAX_UPLOAD),
    (_SEND, MAX_ATTACHMENTS + _MAX_BODY),  # attachments, plus the text and the fields
)
#: French titles of the pages answering what Starlette refuses itself.
_PAGES = {
    404: ("Introuvable", "Cette page n'existe pas dans le bac à sable."),
    405: ("Méthode non permise", "Cette adresse n'accepte pas cette méthode HTTP."),
    413: ("Requête trop volumineuse", "Le contenu envoyé dépasse la taille acceptée par le bac à sable."),
    415: ("Format refusé", "Cette adresse n'accepte pas ce format de contenu (pièces jointes comprises)."),
}
_DEFAULT_PAGE = ("Requête refusée",
                 "Le bac à sable n'a pas pu lire cette requête (formulaire ou paramètres invalides).")


class SandboxHTTP:
    """The ASGI application and its uvicorn server, for one :class:`~mssante.sandbox.runner.Sandbox`."""

    def __init__(self, sandbox: Sandbox) -> None:
        """Build the routes; :meth:`start` serves them."""
        self._sandbox = sandbox
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self.mailboxes = Mailboxes(sandbox)
        self.hub = EventHub(sandbox, self.mailboxes)
        self.api = SandboxAPI(sandbox, self.mailboxes, self.hub)
        self.webmail = Webmail(sandbox, self.mailboxes, self.hub)
        self.annuaire = AnnuaireMock(sandbox.config)
        routes: list[BaseRoute] = [
            Route("/crl/{name}", self.published),
            Route("/ac/{name}", self.published),
            *self.api.routes(),
            *self.webmail.routes(),
            Mount(ANNUAIRE_PATH, app=self.annuaire.app),
            Mount(_realm_path(sandbox.psc.issuer), app=_Unprefixed(sandbox.psc.app)),
        ]
        self.starlette = Starlette(routes=routes, exception_handlers={HTTPException: self._refused})
        psc_limit = (re.escape(_realm_path(sandbox.psc.issuer)) + "/.*", PSC_MAX_BODY)  # refused on its length
        self.app: ASGIApp = BodyLimit(self.starlette, limit=_MAX_BODY, overrides=[*_BODY_LIMITS, psc_limit],
                                   uploads=[_SEND], refuse=self._refuse)

    async def start(self, sock: socket.socket) -> None:
        """Serve on the already bound, listening ``sock``; return once it accepts connections.

        Raises:
            TransportError: the server failed to start.
        """
        config = uvicorn.Config(
            self.app, lifespan="off", log_level="warning", access_log=False, ws="none", http="h11",
            timeout_graceful_shutdown=_GRACEFUL_SECONDS,
        )
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            if self._task.done():
                self._task.result()
                raise TransportError("the sandbox HTTP server stopped while starting")
            await asyncio.sleep(0.01)

    def server_state(self) -> uvicorn.server.ServerState:
        """uvicorn's live connections and request tasks (tests wait on them to drain).

        Raises:
            RuntimeError: the server is not started.
        """
        if self._server is None:
            raise RuntimeError("the sandbox HTTP server is not started")
        return self._server.server_state

    async def aclose(self) -> None:
        """Stop serving (idempotent): end the live event streams, then the server."""
        await self.hub.aclose()
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._task, timeout=_GRACEFUL_SECONDS + 3)
        self._server = None
        self._task = None
        await self.webmail.aclose()

    # ------------------------------------------------------------------ refusals

    def _answer(self, request: Request, status: int, message: str) -> Response:
        path = request.url.path
        json_prefixes = ("/api/", ANNUAIRE_PATH + "/", _realm_path(self._sandbox.psc.issuer) + "/")
        if path == "/api" or path.startswith(json_prefixes):
            code = {404: "not_found", 405: "method_not_allowed", 413: "too_large",
                    415: "unsupported_media_type"}.get(status, "invalid_request")
            return error_response(status, code, message)
        title, text = _PAGES.get(status, _DEFAULT_PAGE)
        return self.webmail.ctx.message_page(request, status, title, text)

    async def _refused(self, request: Request, exc: Exception) -> Response:
        """What Starlette refuses itself: unknown path (404), wrong method (405), bad form (400)."""
        status = exc.status_code if isinstance(exc, HTTPException) and 400 <= exc.status_code < 500 else 400
        detail = exc.detail if isinstance(exc, HTTPException) else ""
        response = self._answer(request, status, str(detail) or "the request was refused")
        if isinstance(exc, HTTPException) and exc.headers:
            response.headers.update(exc.headers)  # Allow: on a 405
        return response

    def _refuse(self, scope: Scope, status: int, message: str) -> ASGIApp:
        return self._answer(Request(scope), status, message)

    # ------------------------------------------------------------------ routes

    async def published(self, request: Request) -> Response:
        """``GET /crl/<name>``, ``/ac/<name>``: a CRL or CA certificate of the test PKI."""
        outage = bench_faults(self._sandbox).crl_outage  # ECO.1.1.7: the conformance bench's CRL outage
        if outage is not None and request.url.path.startswith("/crl/"):
            return await outage.respond()
        found = self._sandbox.pki.published(request.url.path)
        if found is None:
            return self._answer(request, 404, "no such CRL or CA certificate")
        data, content_type = found
        return Response(data, media_type=content_type, headers={"Cache-Control": "no-cache"})


def _realm_path(issuer: str) -> str:
    return urlsplit(issuer).path.rstrip("/")


class _Unprefixed:
    """The mock PSC's app, which routes on full paths, mounted under its realm path.

    Starlette's ``Mount`` hands the app a ``root_path``; the PSC's routes carry the realm
    prefix themselves, so it is taken back out of the ``root_path``.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        await self.app({**scope, "root_path": ""}, receive, send)
