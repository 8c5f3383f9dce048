"""The sandbox's HTTP server: mock PSC, CRL and CA publication, and the sandbox API.

One uvicorn server on the sandbox's HTTP port serves:

* ``/auth/realms/esante-wallet/...``: the mock Pro Santé Connect;
* ``/crl/<name>`` and ``/ac/<name>``: CRLs and CA certificates of the test PKI (what the
  certificates' CRL distribution points and AIA name);
* ``/api/...``: a JSON API to drive the operator (health, journal, faults);
* ``/``: a French landing page listing the test BALs and services.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import socket
from typing import TYPE_CHECKING, Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route

from mssante.errors import MssanteError, TransportError, UsageError
from mssante.sandbox.fronts.journal import Journal

if TYPE_CHECKING:
    from mssante.sandbox.runner import Sandbox

__all__ = ["SandboxHTTP"]


def _error(status: int, error: str, message: str) -> JSONResponse:
    return JSONResponse({"error": error, "message": message}, status_code=status)


class SandboxHTTP:
    """The ASGI application and its uvicorn server, for one :class:`~mssante.sandbox.runner.Sandbox`."""

    def __init__(self, sandbox: Sandbox) -> None:
        """Build the routes; :meth:`start` serves them."""
        self._sandbox = sandbox
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        routes = [
            Route("/", self.index),
            Route("/crl/{name}", self.published),
            Route("/ac/{name}", self.published),
            Route("/api/health", self.health),
            Route("/api/journal", self.journal),
            Route("/api/faults", self.faults, methods=["GET", "POST", "DELETE"]),
            Route("/api/sessions/{bal}", self.end_sessions, methods=["DELETE"]),
            Mount("/", app=sandbox.psc.app),
        ]
        self.app = Starlette(routes=routes)

    async def start(self, sock: socket.socket) -> None:
        """Serve on the already bound, listening ``sock``; return once it accepts connections.

        Raises:
            TransportError: the server failed to start.
        """
        config = uvicorn.Config(
            self.app, lifespan="off", log_level="warning", access_log=False, ws="none", http="h11"
        )
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            if self._task.done():
                self._task.result()
                raise TransportError("the sandbox HTTP server stopped while starting")
            await asyncio.sleep(0.01)

    async def aclose(self) -> None:
        """Stop serving (idempotent)."""
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._task, timeout=5)
        self._server = None
        self._task = None

    # ------------------------------------------------------------------ routes

    async def index(self, request: Request) -> Response:
        info = self._sandbox.info
        rows = "".join(
            f"<tr><td>{html.escape(b['address'])}</td><td>{html.escape(b['kind'])}</td>"
            f"<td>{html.escape(', '.join(b['holders']) or (b['structure_id'] or ''))}</td></tr>"
            for b in info.get("bals", [])
        )
        body = f"""<!doctype html>
<html lang="fr"><head><meta charset="utf-8"><title>Bac à sable MSSanté</title></head>
<body><main>
<h1>Bac à sable MSSanté — opérateur de test</h1>
<p>Domaine : <code>{html.escape(info.get("domain", ""))}</code></p>
<h2>Boîtes aux lettres (BAL)</h2>
<table><thead><tr><th scope="col">Adresse</th><th scope="col">Type</th>
<th scope="col">Titulaires ou structure</th></tr></thead><tbody>{rows}</tbody></table>
<h2>Services</h2>
<ul>
<li>Pro Santé Connect (simulé) : <code>{html.escape(info.get("psc", {}).get("issuer", ""))}</code></li>
<li>DNS : <code>{html.escape(str(info.get("dns", {})))}</code></li>
<li>Journal des sessions : <a href="/api/journal">/api/journal</a></li>
</ul>
</main></body></html>"""
        return HTMLResponse(body)

    async def published(self, request: Request) -> Response:
        found = self._sandbox.pki.published(request.url.path)
        if found is None:
            return PlainTextResponse("introuvable", status_code=404)
        data, content_type = found
        return Response(data, media_type=content_type, headers={"Cache-Control": "no-cache"})

    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok", "domain": self._sandbox.config.domain})

    async def journal(self, request: Request) -> Response:
        records = self._sandbox.journal.records(
            bal=request.query_params.get("bal"), front=request.query_params.get("front")
        )
        if "application/x-ndjson" in request.headers.get("accept", "") or request.query_params.get("format") == "jsonl":
            return PlainTextResponse(Journal.dumps_jsonl(records), media_type="application/x-ndjson")
        return JSONResponse([r.to_dict() for r in records])

    async def faults(self, request: Request) -> Response:
        faults = self._sandbox.faults
        if request.method == "DELETE":
            faults.clear()
        elif request.method == "POST":
            try:
                payload: Any = await request.json()
                if not isinstance(payload, dict):
                    raise UsageError("expected a JSON object")
                _apply_faults(self._sandbox, payload)
            except ValueError:
                return _error(400, "invalid_request", "the body is not JSON")
            except MssanteError as exc:
                return _error(400, exc.error, exc.message)
        return JSONResponse({
            "psc_unavailable": faults.psc_unavailable,
            "delay": faults.delay,
            "pending_auth_failures": faults.pending_auth_failures,
            "live_sessions": [{"bal": s.bal, "front": s.front} for s in faults.sessions()],
        })

    async def end_sessions(self, request: Request) -> Response:
        mode = request.query_params.get("mode", "bye")
        try:
            bal = request.path_params["bal"]
            count = await self._sandbox.faults.end_sessions(None if bal == "*" else bal, mode)  # type: ignore[arg-type]
        except MssanteError as exc:
            return _error(400, exc.error, exc.message)
        return JSONResponse({"ended": count})


def _apply_faults(sandbox: Sandbox, payload: dict[str, Any]) -> None:
    """Apply a fault request: ``{"psc_unavailable": bool, "delay": s, "fail_auth": {...}}``.

    Raises:
        UsageError: a field has the wrong type or an unknown value.
    """
    faults = sandbox.faults
    known = {"psc_unavailable", "delay", "fail_auth"}
    unknown = set(payload) - known
    if unknown:
        raise UsageError(f"unknown fault fields: {sorted(unknown)}")
    if "psc_unavailable" in payload:
        if not isinstance(payload["psc_unavailable"], bool):
            raise UsageError("psc_unavailable must be true or false")
        faults.psc_unavailable = payload["psc_unavailable"]
        sandbox.psc.unavailable = payload["psc_unavailable"]
    if "delay" in payload:
        delay = payload["delay"]
        if not isinstance(delay, int | float) or not 0 <= delay <= 60:
            raise UsageError("delay must be a number of seconds between 0 and 60")
        faults.delay = float(delay)
    if "fail_auth" in payload:
        spec = payload["fail_auth"]
        if not isinstance(spec, dict):
            raise UsageError('fail_auth must be {"count": n, "code": "...", "bal": "..."}')
        count = spec.get("count", 1)
        if not isinstance(count, int):
            raise UsageError("fail_auth.count must be an integer")
        faults.fail_next_auth(count, spec.get("code", "AUTHENTICATIONFAILED"), bal=spec.get("bal"))
