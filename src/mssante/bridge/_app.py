"""The bridge's HTTP API (Starlette): routes, client authentication, rate limits, JSON errors.

Thick clients authenticate every call with their installation credential (HTTP Basic,
RFC 7617: installation id and secret) and, for a session, its secret in ``X-Session-Secret``.
An unknown session, a wrong session secret and another installation's session all answer the
same 404, so session ids cannot be probed. Errors are ``{"error": code, "message": text}``;
bad input of any shape (too large, too deep, not JSON, not a form) is a 4xx; only a bug of
ours is logged and answered 500 ``internal_error``, without details.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import re
from collections.abc import AsyncGenerator, Awaitable, Callable
from json.encoder import encode_basestring_ascii
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from mssante._asgi_guard import ASGIApp, BodyLimit, Receive, Scope, Send
from mssante.bridge._core import CHECK, BridgeCore
from mssante.bridge._delegation import delegation_routes
from mssante.bridge._errors import BridgeError
from mssante.bridge._logins import LoginFlows
from mssante.bridge._openapi import openapi_document
from mssante.bridge._proxy import TrustedProxies
from mssante.bridge._ratelimit import TokenBuckets
from mssante.errors import AuthUnavailable, MssanteError, PSCError, TransportError, TrustError

__all__ = ["API", "MAX_BODY", "SESSION_SECRET_HEADER", "Front", "json_error", "routes"]

log = logging.getLogger("mssante.bridge")
SESSION_SECRET_HEADER = "X-Session-Secret"  # noqa: S105 - a header name
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}  # RFC 6749 §5.1 for token answers
MAX_BODY = 16 * 1024  # bytes: every request body of this API is tiny (enforced by the server's BodyLimit)
_MAX_FORM_FIELDS = 8  # a back-channel logout form has one field (OIDC BCL 1.0 §2.5)
_NO_STORE_RAW = [(k.lower().encode(), v.encode()) for k, v in _NO_STORE.items()]
_TOKEN_PATH = re.compile(r"/sessions/([^/]+)/token")  # as Starlette matches ``/sessions/{session_id}/token``
_EVENTS_PATH = re.compile(r"/sessions/([^/]+)/events")
_SSE_HEADERS_TEXT = (("Content-Type", "text/event-stream; charset=utf-8"), ("Cache-Control", "no-store"),
                     ("X-Accel-Buffering", "no"))  # nginx: do not buffer the stream
_SSE_HEADERS = [(k.lower().encode(), v.encode()) for k, v in _SSE_HEADERS_TEXT]
#: Pseudo-events queued to an event stream: the heartbeat's timer fired; the client went away.
_BEAT, _GONE = "_beat", "_gone"
#: A heartbeat reads the session from the store at the first beat, then one in this many (8 minutes at the
#: shipped 15 s): a session ends by an event, except when it expires from the store, which takes
#: ``session_ttl`` (12 h) without a refresh. One in 8 made 10,000 held streams read Redis 83 times a second.
_CHECK_EVERY = 32
_FORM = "application/x-www-form-urlencoded"
_DONE_PAGE = ("<!doctype html><html lang=fr><meta charset=utf-8><title>Pro Santé Connect</title>"
              "<p>Connexion réussie. Vous pouvez fermer cette fenêtre et revenir au logiciel.</p></html>")

Handler = Callable[[Request], Awaitable[Response]]


def json_error(status: int, code: str, message: str, retry_after: str | None = None) -> JSONResponse:
    """The bridge's error answer ``{"error": code, "message": message}``, never cached.
    """
    headers = dict(_NO_STORE)
    if retry_after:
        headers["Retry-After"] = retry_after
    if status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="mssante-bridge"'
    return JSONResponse({"error": code, "message": message}, status, headers=headers)


class API:
    """The bridge's request handlers, over one :class:`BridgeCore`."""

    def __init__(self, core: BridgeCore, logins: LoginFlows) -> None:
        self.core = core
        self.logins = logins
        self.per_ip = TokenBuckets(core.config.per_ip)
        self.per_installation = TokenBuckets(core.config.per_installation)
        self.auth_failures = TokenBuckets(core.config.auth_failures)

    # -- plumbing ---------------------------------------------------------------------------
    def endpoint(self, handler: Handler, *, limited: bool = True) -> Handler:
        async def run(request: Request) -> Response:
            try:
                if limited:
                    self._limit(self.per_ip, _ip(request.scope))
                return await handler(request)
            except Exception as exc:
                return _error_answer(exc, request.method, request.url.path)

        return run

    def _limit(self, buckets: TokenBuckets, key: str, *, take: bool = True) -> None:
        wait = buckets.take(key) if take else buckets.blocked(key)
        if wait > 0:
            raise BridgeError(429, "rate_limited", "too many requests", retry_after=TokenBuckets.retry_after(wait))

    async def installation(self, request: Request) -> str:
        return await self.installation_of(request.headers.get("authorization", ""), _ip(request.scope))

    async def installation_of(self, header: str, ip: str) -> str:
        """The installation authenticated by this ``Authorization`` header (HTTP Basic, RFC 7617)."""
        scheme, _, value = header.partition(" ")
        try:
            if scheme.lower() != "basic":
                raise ValueError(scheme)
            installation_id, sep, secret = base64.b64decode(value.strip(), validate=True).decode().partition(":")
            if not sep or not installation_id or len(installation_id) > 128 or len(secret) > 256:
                raise ValueError("shape")
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise BridgeError(401, "invalid_client", "installation credentials required (HTTP Basic)") from None
        # Refusals are counted per client address and stop the scrypt checks they would cost (a
        # credential verified before costs none and is not stopped); the installation's own bucket
        # counts its authenticated requests only, so nobody can drain it with its id and a wrong secret.
        if self.core.remembered(installation_id, secret):  # the common case: one SHA-256, no await
            self._limit(self.per_installation, installation_id)
            return installation_id
        self._limit(self.auth_failures, ip, take=False)
        if not await self.core.check_installation(installation_id, secret):
            self.auth_failures.take(ip)
            self.core.audit.record("authenticate", "refused", installation=installation_id, ip=ip)
            raise BridgeError(401, "invalid_client", "unknown installation or wrong secret")
        self._limit(self.per_installation, installation_id)
        return installation_id

    async def session(self, request: Request, installation_id: str | None = None, *, allow_ended: bool = False,
                      fresh: bool = False) -> tuple[str, Any]:
        if installation_id is None:
            installation_id = await self.installation(request)
        secret = request.headers.get(SESSION_SECRET_HEADER, "")
        session_id = str(request.path_params["session_id"])
        record = await self.core.session(installation_id, session_id, secret, allow_ended=allow_ended, fresh=fresh)
        return installation_id, record

    async def body(self, request: Request) -> dict[str, Any]:
        return _json_object(await request.body())  # at most MAX_BODY: the server's BodyLimit refused more

    async def form(self, request: Request) -> dict[str, str]:
        """An ``application/x-www-form-urlencoded`` body, read here rather than by python-multipart.

        The bridge's own dependencies do not include python-multipart, and one small form
        needs no streaming parser: a few fields of ASCII, each name once.
        """
        ctype = request.headers.get("content-type", "").partition(";")[0].strip().lower()
        if ctype != _FORM:
            raise BridgeError(415, "invalid_request", f"the body must be {_FORM}")
        try:
            text = (await request.body()).decode("ascii")
            pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text),
                              max_num_fields=_MAX_FORM_FIELDS, errors="strict")
        except (UnicodeDecodeError, ValueError):
            raise BridgeError(400, "invalid_request", "the body is not a valid form") from None
        fields = dict(pairs)
        if len(fields) != len(pairs):
            raise BridgeError(400, "invalid_request", "a form field is repeated")
        return fields

    # -- routes -------------------------------------------------------------------------------
    async def health(self, request: Request) -> Response:
        backend = "redis" if self.core.store.shared else "sqlite"
        return JSONResponse({"status": "ok", "store": backend, "sessions": await self.core.count_sessions()})

    async def openapi(self, request: Request) -> Response:
        return JSONResponse(openapi_document(self.core.config.base_url))

    async def start_login(self, request: Request) -> Response:
        installation_id = await self.installation(request)
        data = await self.body(request)
        method = data.get("method")
        if method == "browser":
            login_id, url, ttl = await self.logins.start_browser(installation_id)
            body: dict[str, Any] = {"login_id": login_id, "authorization_url": url, "expires_in": int(ttl)}
        elif method == "ciba":
            national_id, message, channel = data.get("national_id"), data.get("binding_message"), data.get("channel")
            if not isinstance(national_id, str) or not national_id.isdigit() or len(national_id) > 20:
                raise BridgeError(400, "invalid_request", "national_id must be digits (idNat_PS)")
            if message is not None and not isinstance(message, str):
                raise BridgeError(400, "invalid_request", "binding_message must be a string")
            if channel not in (None, "CARD", "MOBILE"):
                raise BridgeError(400, "invalid_request", "channel must be CARD or MOBILE")
            login_id, shown, ttl = await self.logins.start_ciba(installation_id, national_id, binding_message=message,
                                                                channel=channel or "MOBILE")
            body = {"login_id": login_id, "binding_message": shown, "expires_in": int(ttl)}
        else:
            raise BridgeError(400, "invalid_request", "method must be 'browser' or 'ciba'")
        return JSONResponse(body, 201, headers=_NO_STORE)

    async def login_result(self, request: Request) -> Response:
        installation_id = await self.installation(request)
        try:
            wait = float(request.query_params.get("wait", "0"))
        except ValueError:
            raise BridgeError(400, "invalid_request", "wait must be a number of seconds") from None
        result = await self.logins.result(installation_id, str(request.path_params["login_id"]), wait)
        if result is None:
            return JSONResponse({"status": "pending"}, 202, headers=_NO_STORE)
        return JSONResponse({"status": "complete", **result}, 200, headers=_NO_STORE)

    async def callback(self, request: Request) -> Response:
        params = dict(request.query_params)
        ip = request.client.host if request.client else ""
        await self.logins.callback(params, ip)
        return HTMLResponse(_DONE_PAGE, headers=_NO_STORE)

    async def token(self, request: Request) -> Response:
        answer = await self.token_answer(request.headers.get("authorization", ""), _ip(request.scope),
                                         str(request.path_params["session_id"]),
                                         request.headers.get(SESSION_SECRET_HEADER, ""), await request.body())
        return Response(answer, media_type="application/json", headers=_NO_STORE)

    async def token_answer(self, authorization: str, ip: str, session_id: str, session_secret: str,
                           body: bytes) -> bytes:
        """The JSON answer to ``POST /sessions/{id}/token``: credentials, session, access token."""
        installation_id = await self.installation_of(authorization, ip)
        fresh = _json_object(body).get("fresh", False) is True
        record = await self.core.session(installation_id, session_id, session_secret, fresh=fresh)
        token, expires_at = await self.core.access_token(record, fresh=fresh)
        expires_in = max(0, int(expires_at - self.core.clock()))
        return b'{"access_token":%s,"token_type":"Bearer","expires_in":%d}' % (
            encode_basestring_ascii(token.reveal()).encode(), expires_in)

    async def fast_token(self, scope: Scope, receive: Receive, send: Send, session_id: str, body: bytes) -> None:
        """Serve ``POST /sessions/{id}/token`` without the router (:class:`Front`); same answers as :meth:`token`."""
        path = scope["path"]
        try:
            ip = _ip(scope)
            self._limit(self.per_ip, ip)
            authorization, secret = _credentials(scope)
            answer = await self.token_answer(authorization, ip, session_id, secret, body)
        except Exception as exc:
            await _error_answer(exc, "POST", path)(scope, receive, send)
            return
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-length", str(len(answer)).encode()), (b"content-type", b"application/json"), *_NO_STORE_RAW]})
        await send({"type": "http.response.body", "body": answer})

    async def logout(self, request: Request) -> Response:
        _, record = await self.session(request, allow_ended=True)
        if not record.ended:
            await self.core.logout(record)
        return Response(status_code=204)

    async def events(self, request: Request) -> Response:
        _, record = await self.session(request, allow_ended=True)
        queue = self.core.subscribe(record.session_id)
        return StreamingResponse(self._stream(record, queue), headers=dict(_SSE_HEADERS_TEXT))

    async def _stream(self, record: Any, queue: asyncio.Queue[tuple[str, dict[str, Any]]]) -> AsyncGenerator[str]:
        """The SSE text of one event stream, until the session ends or :data:`_GONE` is queued (client gone).

        The heartbeat is a timer that queues :data:`_BEAT` (no task waits for a timeout): 10,000 streams
        held cost a queue, a timer and the server's own connection objects each. A heartbeat reads the
        session from the store only when the store's events may be missing, after a resync
        (:data:`~mssante.bridge._core.CHECK`), and at the first beat then every :data:`_CHECK_EVERY`
        (a session that merely expired from the store announces nothing).
        """
        session_id, core = record.session_id, self.core
        loop = asyncio.get_running_loop()
        tick: asyncio.TimerHandle | None = None
        beats = 0
        try:
            if record.ended:
                yield _sse("session_ended", {"reason": record.ended})
                return
            yield _sse("ready", {})
            while True:
                tick = loop.call_later(core.config.heartbeat, _offer, queue, _BEAT)
                event, data = await queue.get()
                tick.cancel()
                if event == _GONE:
                    return
                if event == _BEAT:
                    beats += 1
                    if beats % _CHECK_EVERY != 1 and core.store.events_current():  # an end comes as an event
                        yield ": ping\n\n"
                        continue
                if event in (_BEAT, CHECK):
                    try:
                        current = await core.current_session(session_id)  # ended while events were lost?
                    except MssanteError as exc:  # the store is busy or away: keep the stream, look again later
                        log.warning("event stream check failed: %s", exc.error)
                        yield ": ping\n\n"
                        continue
                    if current is None or current.ended:
                        yield _sse("session_ended", {"reason": current.ended if current else "unknown"})
                        return
                    yield ": ping\n\n"
                    continue
                yield _sse(event, data)
                if event == "session_ended":
                    return
        finally:
            if tick is not None:
                tick.cancel()
            core.unsubscribe(session_id, queue)

    async def fast_events(self, scope: Scope, receive: Receive, send: Send, session_id: str) -> None:
        """Serve ``GET /sessions/{id}/events`` without the router (:class:`Front`); same answers as :meth:`events`.

        One task per stream (the server's): the client's disconnection is awaited by a future whose
        callback queues :data:`_GONE`, instead of Starlette's task group of two tasks per response.
        """
        try:
            ip = _ip(scope)
            self._limit(self.per_ip, ip)
            authorization, secret = _credentials(scope)
            installation_id = await self.installation_of(authorization, ip)
            record = await self.core.session(installation_id, session_id, secret, allow_ended=True)
        except Exception as exc:
            await _error_answer(exc, "GET", scope["path"])(scope, receive, send)
            return
        await self.serve_stream(receive, send, record.session_id, lambda queue: self._stream(record, queue))

    async def serve_stream(self, receive: Receive, send: Send, session_id: str,
                           stream: Callable[[asyncio.Queue[tuple[str, dict[str, Any]]]], AsyncGenerator[str]]) -> None:
        """Send the SSE texts of ``stream(queue)`` (``queue`` subscribed to the session) in the server's task.

        Also the delegates' streams (:mod:`mssante.bridge._delegation`).
        """
        queue = self.core.subscribe(session_id)
        gone = asyncio.ensure_future(_disconnected(receive))
        gone.add_done_callback(lambda _: _offer(queue, _GONE))
        try:
            await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})
            async with contextlib.aclosing(stream(queue)) as texts:  # unsubscribes in any case
                async for text in texts:
                    if gone.done():
                        return
                    await send({"type": "http.response.body", "body": text.encode(), "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            gone.cancel()
            self.core.unsubscribe(session_id, queue)  # also when the stream never started

    async def backchannel_logout(self, request: Request) -> Response:
        token = (await self.form(request)).get("logout_token")
        if not isinstance(token, str) or not token:
            raise BridgeError(400, "invalid_request", "logout_token is required")
        try:
            await self.core.backchannel_logout(token)
        except PSCError as exc:  # OIDC Back-Channel Logout 1.0 §2.8
            self.core.audit.record("backchannel_logout", "refused", detail=exc.oauth_error or "")
            raise BridgeError(400, "invalid_request", exc.message) from exc
        return Response(status_code=200, headers=_NO_STORE)


def _credentials(scope: Scope) -> tuple[str, str]:
    """The ``Authorization`` and ``X-Session-Secret`` headers ("" when absent; the first of each, as Starlette)."""
    authorization = secret = None
    for name, value in scope["headers"]:
        if name == b"authorization" and authorization is None:
            authorization = value.decode("latin-1")
        elif name == b"x-session-secret" and secret is None:
            secret = value.decode("latin-1")
    return authorization or "", secret or ""


async def _disconnected(receive: Receive) -> None:
    """Return when the client has gone (what is left of a request body is read and dropped)."""
    while (await receive())["type"] != "http.disconnect":
        pass


def _offer(queue: asyncio.Queue[tuple[str, dict[str, Any]]], event: str) -> None:
    with contextlib.suppress(asyncio.QueueFull):  # a full queue wakes its stream anyway
        queue.put_nowait((event, {}))


def _ip(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else ""


def _json_object(raw: bytes) -> dict[str, Any]:
    """A request body as a JSON object (an empty body is ``{}``)."""
    if not raw or raw == b"{}":  # what most clients send
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        raise BridgeError(400, "invalid_request", "the body is not JSON") from None
    except RecursionError:  # json has no depth limit of its own
        raise BridgeError(400, "invalid_request", "the body is nested too deeply") from None
    if not isinstance(data, dict):
        raise BridgeError(400, "invalid_request", "the body must be a JSON object")
    return data


def _error_answer(exc: Exception, method: str, path: str) -> Response:
    """The JSON answer for an error raised while serving a request: never a traceback on the wire."""
    if isinstance(exc, BridgeError):
        return json_error(exc.status, exc.code, exc.message, exc.retry_after)
    if isinstance(exc, (AuthUnavailable, TransportError, TrustError)):
        return json_error(503, "unavailable", exc.message, "5")
    if isinstance(exc, PSCError):
        return json_error(502, exc.oauth_error or "psc_error", exc.message)
    if isinstance(exc, MssanteError):
        return json_error(400 if exc.fault in ("caller", "input") else 502, exc.error, exc.message)
    log.error("bridge request failed: %s %s", method, path, exc_info=exc)
    return json_error(500, "internal_error", "the bridge failed to handle this request")


def _sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def routes(api: API) -> list[Route]:
    """Return the API routes served by ``api``."""
    e = api.endpoint
    return [
        Route("/sessions/{session_id}/token", e(api.token), methods=["POST"]),  # Front serves it before the router
        Route("/health", e(api.health, limited=False), methods=["GET"]),
        Route("/openapi.json", e(api.openapi, limited=False), methods=["GET"]),
        Route("/logins", e(api.start_login), methods=["POST"]),
        Route("/logins/{login_id}", e(api.login_result), methods=["GET"]),
        Route("/callback", e(api.callback), methods=["GET"]),
        Route("/sessions/{session_id}/events", e(api.events), methods=["GET"]),
        Route("/sessions/{session_id}", e(api.logout), methods=["DELETE"]),
        Route("/backchannel-logout", e(api.backchannel_logout), methods=["POST"]),
        *delegation_routes(api),  # delegation to another installation (a fleet): _delegation.py
    ]


class Front:
    """The bridge's outermost ASGI layer: ``POST /sessions/{id}/token`` and the event streams without the router.

    The hot path of the bridge (every IMAP/SMTP login of every thick client) skips Starlette's
    router, request objects and middleware stack, and keeps every guarantee of the full app: the
    same body limit and refusals (``guard``, :class:`~mssante._asgi_guard.BodyLimit`), the same
    trusted-proxy rewrite, rate limits, credential checks and JSON errors (:meth:`API.fast_token`).
    The event streams (``GET /sessions/{id}/events``, :meth:`API.fast_events`) skip them too, so that
    each held stream costs one task. Every other request goes to ``app``.
    """

    def __init__(self, api: API, app: ASGIApp, guard: BodyLimit, proxies: TrustedProxies | None = None) -> None:
        """Serve the token route with ``api``, the rest with ``app`` (the guarded Starlette app)."""
        self.api = api
        self.app = app
        self.guard = guard
        self.proxies = proxies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope.get("root_path"):
            method = scope["method"]
            pattern = _TOKEN_PATH if method == "POST" else _EVENTS_PATH if method == "GET" else None
            match = pattern.fullmatch(scope["path"]) if pattern is not None else None
            if match is not None:
                body = await self.guard.read(scope, receive, send)
                if body is None:
                    return  # refused (answered) or gone
                if self.proxies is not None:
                    scope = self.proxies.rewrite(scope)
                if method == "POST":
                    await self.api.fast_token(scope, receive, send, match[1], body)
                else:
                    await self.api.fast_events(scope, receive, send, match[1])
                return
        await self.app(scope, receive, send)
