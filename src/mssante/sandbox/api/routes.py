"""The sandbox JSON API under ``/api`` (documented at ``/api/openapi.json``).

Modelled on Mailpit's REST API: an LPS's automated tests, in any language, ask what arrived in
a test BAL, read it parsed (X-MSS headers, XDM documents, rule findings) or raw, drop messages
in, reset BALs, read the session journal, inject faults and listen to live events.

Every error is JSON ``{"error": code, "message": text}``: 400 for a bad request, 404 for an
unknown BAL, folder, message or path, 503 when the sandbox runs without a mailbox store, and
500 ``internal_error`` (never a traceback) for a bug. The API has no authentication: the
sandbox listens on loopback only.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from mssante.errors import MssanteError, UsageError
from mssante.sandbox.api.events import MAX_WAIT, Event, EventHub, conformance_feed
from mssante.sandbox.api.faults import apply_faults, bench_faults, clear_faults, dns_queries, faults_json
from mssante.sandbox.api.messages import FOLDERS, Mailboxes, NotFound, StoreUnavailable, message_json, summary_json
from mssante.sandbox.api.openapi import openapi_document
from mssante.sandbox.fronts.journal import Journal

if TYPE_CHECKING:
    from mssante.sandbox.runner import Sandbox

__all__ = ["SandboxAPI", "error_response"]

log = logging.getLogger(__name__)

Handler = Callable[[Request], Awaitable[Response]]
_EVENT_KINDS = frozenset({"message", "expunge", "journal"})
#: Largest message accepted by ``POST /api/bals/{address}/messages`` (the SMTP front's 25 MB, with margin).
MAX_UPLOAD = 40 * 1024 * 1024


def error_response(status: int, error: str, message: str) -> JSONResponse:
    """The API's error body ``{"error", "message"}`` with ``status``.
    """
    return JSONResponse({"error": error, "message": message}, status_code=status)


def json_errors(handler: Handler) -> Handler:
    """Wrap an API handler so that every failure becomes a JSON error, never a traceback page.

    Raises:
        Nothing: exceptions become 4xx/5xx JSON answers.
    """

    async def guarded(request: Request) -> Response:
        try:
            return await handler(request)
        except NotFound as exc:
            return error_response(404, exc.error, exc.message)
        except StoreUnavailable as exc:
            return error_response(503, exc.error, exc.message)
        except MssanteError as exc:
            return error_response(400, exc.error, exc.message)
        except Exception:
            log.exception("sandbox API failure on %s %s", request.method, request.url.path)
            return error_response(500, "internal_error", "unexpected sandbox error; see the sandbox log")

    return guarded


def parse_since(value: str | None) -> float | None:
    """Read ``since=``: seconds since the epoch, or an ISO 8601 date-time with offset.

    Raises:
        UsageError: neither form.
    """
    if value is None or value == "":
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError("since must be epoch seconds or an ISO 8601 date-time") from None
    if moment.tzinfo is None:
        raise UsageError("since needs a UTC offset, e.g. 2025-01-31T10:00:00+00:00")
    return moment.timestamp()


def _int_param(value: str, name: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise UsageError(f"{name} must be an integer") from None
    if number < 0:
        raise UsageError(f"{name} must be >= 0")
    return number


def _float_param(value: str, name: str, maximum: float) -> float:
    try:
        number = float(value)
    except ValueError:
        raise UsageError(f"{name} must be a number of seconds") from None
    if not 0 <= number <= maximum:
        raise UsageError(f"{name} must be between 0 and {maximum:g}")
    return number


def _uid(request: Request) -> int:
    return int(request.path_params["uid"])


class SandboxAPI:
    """The ``/api`` routes of one sandbox."""

    def __init__(self, sandbox: Sandbox, mailboxes: Mailboxes, hub: EventHub) -> None:
        """Serve ``sandbox`` through ``mailboxes``; live events come from ``hub``."""
        self._sandbox = sandbox
        self._mail = mailboxes
        self._hub = hub

    def routes(self) -> list[Route]:
        """The routes, to put before the PSC mount (the last one answers unknown ``/api`` paths)."""
        table: list[tuple[str, Handler, list[str]]] = [
            ("/api/openapi.json", self.openapi, ["GET"]),
            ("/api/health", self.health, ["GET"]),
            ("/api/bals", self.bals, ["GET"]),
            ("/api/bals/{address}", self.bal, ["GET", "DELETE"]),
            ("/api/bals/{address}/messages", self.messages, ["GET", "POST"]),
            ("/api/bals/{address}/messages/{uid:int}", self.message, ["GET"]),
            ("/api/bals/{address}/messages/{uid:int}/raw", self.raw, ["GET"]),
            ("/api/bals/{address}/messages/{uid:int}/attachments/{index:int}", self.attachment, ["GET"]),
            ("/api/journal", self.journal, ["GET"]),
            ("/api/events", self.events, ["GET"]),
            ("/api/conformance", self.conformance, ["GET"]),
            ("/api/conformance/events", self.conformance_events, ["GET", "POST"]),
            ("/api/conformance/steps/{step}", self.step, ["GET"]),
            ("/api/conformance/steps/{step}/done", self.step_done, ["POST"]),
            ("/api/faults", self.faults, ["GET", "POST", "DELETE"]),
            ("/api/sessions/{bal}", self.end_sessions, ["DELETE"]),
            ("/api/psc/sessions/{national_id}", self.end_psc_sessions, ["GET", "DELETE"]),
            ("/api/tls/handshakes", self.handshakes, ["GET"]),
            ("/api/tls/client-hellos", self.client_hellos, ["GET"]),
            ("/api/dns/queries", self.dns_queries, ["GET"]),
            ("/api/annuaire/access-log", self.annuaire_log, ["GET"]),
            ("/api/{rest:path}", self.unknown, ["GET", "POST", "PUT", "PATCH", "DELETE"]),
        ]
        return [Route(path, json_errors(handler), methods=methods) for path, handler, methods in table]

    # -- descriptive ---------------------------------------------------------------------------
    async def openapi(self, request: Request) -> Response:
        """``GET /api/openapi.json``: the OpenAPI 3.1 description of this API.

        Raises:
            NotFound, StoreUnavailable, UsageError: answered as JSON errors by :func:`json_errors`.
        """
        base = f"{request.url.scheme}://{request.url.netloc}"
        return JSONResponse(openapi_document(base))

    async def health(self, request: Request) -> Response:
        """``GET /api/health``."""
        return JSONResponse({"status": "ok", "domain": self._sandbox.config.domain, "store": self._mail.available})

    async def unknown(self, request: Request) -> Response:
        """Any other ``/api`` path: 404 JSON.

        Raises:
            NotFound: always, answered as a JSON 404 by :func:`json_errors`.
        """
        raise NotFound(f"no API route {request.method} {request.url.path}; see /api/openapi.json")

    # -- BALs and messages -----------------------------------------------------------------------
    async def _counts(self, address: str) -> dict[str, int] | None:
        if not self._mail.available:
            return None
        return {folder: len(await self._mail.store.list_messages(address, folder)) for folder in FOLDERS}

    async def _bal_json(self, address: str) -> dict[str, Any]:
        bal = self._sandbox.config.bal(address)
        assert bal is not None
        path = quote(bal.address, safe="@")
        return {
            "address": bal.address, "kind": bal.kind, "holders": list(bal.holders),
            "structure_id": bal.structure_id, "folders": list(FOLDERS), "counts": await self._counts(bal.address),
            "messages_url": f"/api/bals/{path}/messages",
        }

    async def bals(self, request: Request) -> Response:
        """``GET /api/bals``: every test BAL with its message counts per folder.

        Raises:
            NotFound, StoreUnavailable, UsageError: answered as JSON errors by :func:`json_errors`.
        """
        return JSONResponse([await self._bal_json(b.address) for b in self._sandbox.config.bals])

    async def bal(self, request: Request) -> Response:
        """``GET /api/bals/{address}`` (one BAL) and ``DELETE`` (empty it, keep its folders).

        Raises:
            NotFound, StoreUnavailable, UsageError: answered as JSON errors by :func:`json_errors`.
        """
        address = self._mail.bal(request.path_params["address"])
        if request.method == "DELETE":
            await self._mail.store.reset(address)
            self._hub.poke()
            return JSONResponse({"address": address, "reset": True})
        return JSONResponse(await self._bal_json(address))

    async def messages(self, request: Request) -> Response:
        """``GET``: summaries of a folder's messages; ``POST``: store a raw message (``message/rfc822``).

        Raises:
            NotFound, StoreUnavailable, UsageError: answered as JSON errors by :func:`json_errors`.
        """
        address = self._mail.bal(request.path_params["address"])
        folder = self._mail.folder(request.query_params.get("folder"))
        if request.method == "POST":
            return await self._inject(request, address, folder)
        items = await self._mail.list(address, folder)
        return JSONResponse({"bal": address, "folder": folder, "count": len(items),
                             "messages": [summary_json(m) for m in items]})

    async def _inject(self, request: Request, address: str, folder: str) -> Response:
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > MAX_UPLOAD:
            return error_response(413, "too_large", f"a message is at most {MAX_UPLOAD} octets")
        body = await request.body()
        if not body.strip():
            raise UsageError("the body must be a raw RFC 5322 message")
        if len(body) > MAX_UPLOAD:
            return error_response(413, "too_large", f"a message is at most {MAX_UPLOAD} octets")
        before = {m.uid for m in await self._mail.store.list_messages(address, folder)}
        await self._mail.store.deliver(address, body, folder=folder)
        self._hub.poke()
        new = sorted({m.uid for m in await self._mail.store.list_messages(address, folder)} - before)
        return JSONResponse({"bal": address, "folder": folder, "uid": new[-1] if new else None}, status_code=201)

    async def message(self, request: Request) -> Response:
        """``GET .../messages/{uid}``: the message, parsed.

        Raises:
            NotFound, StoreUnavailable, UsageError: answered as JSON errors by :func:`json_errors`.
        """
        msg = await self._mail.get(request.path_params["address"], request.query_params.get("folder"), _uid(request))
        return JSONResponse(message_json(msg))

    async def raw(self, request: Request) -> Response:
        """``GET .../messages/{uid}/raw``: the message as stored (``message/rfc822``).

        Raises:
            NotFound, StoreUnavailable, UsageError: answered as JSON errors by :func:`json_errors`.
        """
        msg = await self._mail.get(request.path_params["address"], request.query_params.get("folder"), _uid(request))
        return Response(msg.raw, media_type="message/rfc822")

    async def attachment(self, request: Request) -> Response:
        """``GET .../messages/{uid}/attachments/{index}``: one attachment, decoded.

        Raises:
            NotFound, StoreUnavailable, UsageError: answered as JSON errors by :func:`json_errors`.
        """
        msg = await self._mail.get(request.path_params["address"], request.query_params.get("folder"), _uid(request))
        index = int(request.path_params["index"])
        if msg.parsed is None or not 0 <= index < len(msg.parsed.attachments):
            raise NotFound(f"message {msg.uid} has no attachment #{index}")
        return download_response(msg.parsed.attachments[index].content, msg.parsed.attachments[index].filename,
                                 msg.parsed.attachments[index].content_type)

    # -- journal, events, conformance ------------------------------------------------------------
    async def journal(self, request: Request) -> Response:
        """``GET /api/journal?bal=&front=&since=``: session records (JSON, or JSON Lines).

        Raises:
            NotFound, StoreUnavailable, UsageError: answered as JSON errors by :func:`json_errors`.
        """
        q = request.query_params
        records = self._sandbox.journal.records(bal=q.get("bal") or None, front=q.get("front") or None,
                                                since=parse_since(q.get("since")))
        if "application/x-ndjson" in request.headers.get("accept", "") or q.get("format") == "jsonl":
            return PlainTextResponse(Journal.dumps_jsonl(records), media_type="application/x-ndjson")
        return JSONResponse([r.to_dict() for r in records])

    async def events(self, request: Request) -> Response:
        """``GET /api/events?bal=&kinds=``: server-sent events (new mail, expunges, journal).

        Raises:
            NotFound, StoreUnavailable, UsageError: answered as JSON errors by :func:`json_errors`.
        """
        bal = request.query_params.get("bal")
        if bal:
            bal = self._mail.bal(bal).lower()
        kinds = {k.strip() for k in request.query_params.get("kinds", ",".join(_EVENT_KINDS)).split(",") if k.strip()}
        if not kinds <= _EVENT_KINDS:
            raise UsageError(f"kinds must be among {', '.join(sorted(_EVENT_KINDS))}")

        def accept(event: Event) -> bool:
            if event.kind not in kinds:
                return False
            return bal is None or event.bal == bal or (event.kind == "journal" and event.bal is None)

        return sse_response(self._hub, accept)

    async def conformance(self, request: Request) -> Response:
        """``GET /api/conformance?profile=``: the last conformance results (of one profile when asked).

        Raises:
            NotFound, StoreUnavailable, UsageError: answered as JSON errors by :func:`json_errors`.
        """
        profile = request.query_params.get("profile")
        if profile not in (None, "", "per-org", "app"):
            raise UsageError("profile must be per-org or app")
        return JSONResponse(read_conformance(self._sandbox, profile or None))

    async def conformance_events(self, request: Request) -> Response:
        """``GET /api/conformance/events?after=&run_id=&wait=&format=``: the run events; ``POST``: publish one.

        ``GET`` answers ``{"next": seq, "events": [...]}`` (``format=jsonl``: JSON Lines, the
        next cursor in the ``X-Next`` header), waiting up to ``wait`` seconds for an event after
        ``after`` (long poll); with ``Accept: text/event-stream`` it streams them live (SSE,
        ``Last-Event-ID`` honoured). Events follow ``docs/schemas/conformance-events.schema.json``.

        Raises:
            NotFound, StoreUnavailable, UsageError: answered as JSON errors by :func:`json_errors`.
        """
        feed = conformance_feed(self._sandbox)
        if request.method == "POST":
            payload = await _json_object(request, "expected one event object")
            return JSONResponse({"seq": await feed.publish(payload)}, status_code=201)
        q = request.query_params
        after = _int_param(request.headers.get("last-event-id") or q.get("after") or "0", "after")
        run_id = q.get("run_id") or None
        if "text/event-stream" in request.headers.get("accept", "") or q.get("format") == "sse":
            headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
            return StreamingResponse(feed.stream(after, run_id), media_type="text/event-stream", headers=headers)
        wait = _float_param(q.get("wait") or "0", "wait", MAX_WAIT)
        if wait > 0 and not feed.since(after, run_id):
            await feed.wait_after(after, wait)
        found = feed.since(after, run_id)
        # The next ``after``: past what was returned; with nothing new, the feed's end (so that
        # ``after=<huge>`` asks where the feed is now, and a restarted sandbox is followed again).
        cursor = found[-1][0] if found else feed.last_seq if run_id is None else min(after, feed.last_seq)
        if q.get("format") == "jsonl":
            body = "".join(json.dumps(e, ensure_ascii=False, separators=(",", ":")) + "\n" for _, e in found)
            return PlainTextResponse(body, media_type="application/x-ndjson", headers={"X-Next": str(cursor)})
        return JSONResponse({"next": cursor, "events": [e for _, e in found]})

    async def step(self, request: Request) -> Response:
        """``GET /api/conformance/steps/{step}``: ``{"step", "done", "ok", "detail", "at"}``.

        Raises:
            NotFound, StoreUnavailable, UsageError: answered as JSON errors by :func:`json_errors`.
        """
        step = request.path_params["step"]
        found = conformance_feed(self._sandbox).ack(step)
        return JSONResponse(found or {"step": step, "done": False})

    async def step_done(self, request: Request) -> Response:
        """``POST /api/conformance/steps/{step}/done``: the LPS did the step (body optional: ``{"ok", "detail"}``,
        and for a ``read`` step ``understood``, what the LPS understood of each message read).

        Raises:
            NotFound, StoreUnavailable, UsageError: answered as JSON errors by :func:`json_errors`.
        """
        payload = await _json_object(request, 'expected {"ok": true|false, "detail": "...", "understood": [...]}',
                                     empty_ok=True)
        ok = payload.get("ok", True)
        if not isinstance(ok, bool):
            raise UsageError("ok must be true or false")
        entry = conformance_feed(self._sandbox).acknowledge(request.path_params["step"], ok=ok,
                                                            detail=str(payload.get("detail", "")),
                                                            understood=payload.get("understood"))
        return JSONResponse(entry)

    # -- faults (kept from the first API) --------------------------------------------------------
    async def faults(self, request: Request) -> Response:
        """``GET``/``POST``/``DELETE /api/faults``: read, set or clear the injected faults.

        Raises:
            NotFound, StoreUnavailable, UsageError: answered as JSON errors by :func:`json_errors`.
        """
        if request.method == "DELETE":
            clear_faults(self._sandbox)
        elif request.method == "POST":
            apply_faults(self._sandbox, await _json_object(request, "expected a JSON object"))
        return JSONResponse(faults_json(self._sandbox))

    async def end_sessions(self, request: Request) -> Response:
        """``DELETE /api/sessions/{bal}?mode=bye|drop``: end the live IMAP/SMTP sessions of a BAL (``*``: all).

        Raises:
            NotFound, StoreUnavailable, UsageError: answered as JSON errors by :func:`json_errors`.
        """
        mode = request.query_params.get("mode", "bye")
        if mode not in ("bye", "drop"):
            raise UsageError("mode must be bye or drop")
        bal = request.path_params["bal"]
        count = await self._sandbox.faults.end_sessions(None if bal == "*" else bal, mode)  # type: ignore[arg-type]
        return JSONResponse({"ended": count})

    async def handshakes(self, request: Request) -> Response:
        """``GET /api/tls/handshakes?since=``: the fronts' TLS handshakes and their SNI (``null`` when none sent).

        Raises:
            NotFound, StoreUnavailable, UsageError: answered as JSON errors by :func:`json_errors`.
        """
        since = parse_since(request.query_params.get("since")) or 0.0
        found = bench_faults(self._sandbox).server_names(since)
        return JSONResponse({"handshakes": [{"at": at, "server_name": name} for at, name in found]})

    async def client_hellos(self, request: Request) -> Response:
        """``GET /api/tls/client-hellos?since=``: the ClientHellos the fronts received (ECO.1.1.1, ECO.1.1.3).

        Raises:
            NotFound, StoreUnavailable, UsageError: answered as JSON errors by :func:`json_errors`.
        """
        since = parse_since(request.query_params.get("since")) or 0.0
        return JSONResponse({"client_hellos": [r.to_json() for r in bench_faults(self._sandbox).hellos.since(since)]})

    async def dns_queries(self, request: Request) -> Response:
        """``GET /api/dns/queries?since=``: the queries the sandbox DNS answered (ECO.1.1.9).

        Raises:
            NotFound, StoreUnavailable, UsageError: answered as JSON errors by :func:`json_errors`.
        """
        since = parse_since(request.query_params.get("since")) or 0.0
        return JSONResponse({"queries": [q.to_json() for q in dns_queries(self._sandbox, since)]})

    async def annuaire_log(self, request: Request) -> Response:
        """``GET /api/annuaire/access-log?since=``: the Annuaire Santé mock's requests (never the API key).

        The conformance suite reads it to judge that an LPS looked a recipient up before writing
        (ECO.3.1.4). ``{"requests": [{"time", "method", "path", "query", "status", "matches"}]}``.

        Raises:
            NotFound, StoreUnavailable, UsageError: answered as JSON errors by :func:`json_errors`.
        """
        since = parse_since(request.query_params.get("since")) or 0.0
        http = self._sandbox.http
        found = [] if http is None else [asdict(r) for r in list(http.annuaire.access_log) if r.time >= since]
        return JSONResponse({"requests": found})

    async def end_psc_sessions(self, request: Request) -> Response:
        """``DELETE /api/psc/sessions/{national_id}``: end every PSC session of a professional (ECO.1.2.6).

        ``GET`` (``?since=``) answers ``{"logins": n}``, the PSC logins (new SSO sessions) of the
        professional since then: an LPS that renews its tokens logs in once.

        The mock PSC sends the back-channel logout (OpenID Connect Back-Channel Logout 1.0 §2.5)
        to each client of the sessions that registered a ``backchannel_logout_uri``, before
        answering; afterwards the sessions' refresh tokens get ``invalid_grant`` and their
        access tokens are refused by the fronts. ``{"ended": n}`` (0: no session matched).

        Raises:
            NotFound, StoreUnavailable, UsageError: answered as JSON errors by :func:`json_errors`.
        """
        national_id = request.path_params["national_id"]
        if self._sandbox.config.professional(national_id) is None:
            raise NotFound(f"no professional has the national id {national_id!r}")
        if request.method == "GET":  # how many PSC logins since ``since``: the conformance suite's evidence
            since = parse_since(request.query_params.get("since")) or 0.0
            return JSONResponse({"logins": self._sandbox.psc.logins_since(national_id, since)})
        ended = await self._sandbox.psc.end_session(national_id)
        self._hub.poke()
        return JSONResponse({"national_id": national_id, "ended": ended})


def download_response(content: bytes, filename: str | None, content_type: str) -> Response:
    """An attachment download: ``Content-Disposition: attachment`` with an RFC 6266 file name."""
    name = (filename or "piece-jointe.bin").replace("\r", "").replace("\n", "")
    ascii_name = name.encode("ascii", "replace").decode().replace('"', "_").replace("\\", "_").replace("?", "_")
    disposition = f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"
    media = content_type if "/" in content_type and "\n" not in content_type else "application/octet-stream"
    return Response(content, media_type=media, headers={"Content-Disposition": disposition,
                                                        "X-Content-Type-Options": "nosniff"})


def sse_response(hub: EventHub, accept: Callable[[Event], bool]) -> Response:
    """A ``text/event-stream`` response fed by ``hub``."""
    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(hub.stream(accept), media_type="text/event-stream", headers=headers)


def read_conformance(sandbox: Sandbox, profile: str | None = None) -> Any:
    """The content of ``STATE_DIR/conformance/latest.json`` (``latest-<profile>.json`` for one profile).

    Raises:
        NotFound: no results yet.
        UsageError: the file is not JSON.
    """
    name = "latest.json" if profile is None else f"latest-{profile}.json"
    path = sandbox.state_dir / "conformance" / name
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NotFound("no conformance results yet (conformance/latest.json in the state directory)") from None
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        return json.loads(text)
    except ValueError as exc:
        raise UsageError(f"{path} is not JSON: {exc}") from exc


async def _json_object(request: Request, what: str, *, empty_ok: bool = False) -> dict[str, Any]:
    """The request's JSON object body (``{}`` for an empty body when ``empty_ok``).

    Every JSON body of the API is read here, so each route refuses the same way: 400 for what
    is not JSON, for JSON nested deeper than the parser's recursion limit, and for another type.

    Raises:
        InvalidBody: the body is not a JSON object (answered 400 by :func:`json_errors`).
    """
    body = await request.body()  # bounded by the server's BodyLimit
    if empty_ok and not body.strip():
        return {}
    try:
        payload: Any = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than json can follow
        raise InvalidBody("the body is not JSON (or is nested too deeply)") from None
    if not isinstance(payload, dict):
        raise InvalidBody(what)
    return payload


class InvalidBody(UsageError):
    """A request body that is not the JSON object the route reads (400 ``invalid_request``)."""

    error = "invalid_request"
