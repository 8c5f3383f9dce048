"""The sandbox's HTTP server: webmail, JSON API, mock PSC, CRL and CA publication.

One uvicorn server on the sandbox's HTTP port serves, in this order of routes:

* ``/crl/<name>`` and ``/ac/<name>``: CRLs and CA certificates of the test PKI (what the
  certificates' CRL distribution points and AIA name);
* ``/api/...``: the JSON API (:mod:`mssante.sandbox.api`, OpenAPI at ``/api/openapi.json``):
  BALs and their messages, journal, faults, live events;
* ``/`` and the webmail pages (:mod:`mssante.sandbox.web`, in French), ``/static/...``;
* everything else, mounted last: the mock Pro Santé Connect (``/auth/realms/esante-wallet/...``).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import TYPE_CHECKING

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from mssante.errors import TransportError
from mssante.sandbox.api import EventHub, Mailboxes, SandboxAPI
from mssante.sandbox.api.faults import bench_faults
from mssante.sandbox.web import Webmail

if TYPE_CHECKING:
    from mssante.sandbox.runner import Sandbox

__all__ = ["SandboxHTTP"]

#: Seconds uvicorn waits for open requests (live event streams) when stopping.
_GRACEFUL_SECONDS = 2


class SandboxHTTP:
    """The ASGI application and its uvicorn server, for one :class:`~mssante.sandbox.runner.Sandbox`."""

    def __init__(self, sandbox: Sandbox) -> None:
        """Build the routes; :meth:`start` serves them.

        Raises:
            Nothing.
        """
        self._sandbox = sandbox
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self.mailboxes = Mailboxes(sandbox)
        self.hub = EventHub(sandbox, self.mailboxes)
        self.api = SandboxAPI(sandbox, self.mailboxes, self.hub)
        self.webmail = Webmail(sandbox, self.mailboxes, self.hub)
        routes: list[BaseRoute] = [
            Route("/crl/{name}", self.published),
            Route("/ac/{name}", self.published),
            *self.api.routes(),
            *self.webmail.routes(),
            Mount("/", app=sandbox.psc.app),
        ]
        self.app = Starlette(routes=routes)

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

    async def aclose(self) -> None:
        """Stop serving (idempotent): end the live event streams, then the server.

        Raises:
            Nothing.
        """
        await self.hub.aclose()
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._task, timeout=_GRACEFUL_SECONDS + 3)
        self._server = None
        self._task = None
        await self.webmail.aclose()

    # ------------------------------------------------------------------ routes

    async def published(self, request: Request) -> Response:
        """``GET /crl/<name>``, ``/ac/<name>``: a CRL or CA certificate of the test PKI.

        Raises:
            Nothing.
        """
        outage = bench_faults(self._sandbox).crl_outage  # ECO.1.1.7: the conformance bench's CRL outage
        if outage is not None and request.url.path.startswith("/crl/"):
            return await outage.respond()
        found = self._sandbox.pki.published(request.url.path)
        if found is None:
            return PlainTextResponse("introuvable", status_code=404)
        data, content_type = found
        return Response(data, media_type=content_type, headers={"Cache-Control": "no-cache"})
