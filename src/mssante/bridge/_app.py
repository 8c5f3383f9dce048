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
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from mssante.bridge._core import BridgeCore
from mssante.bridge._errors import BridgeError
from mssante.bridge._logins import LoginFlows
from mssante.bridge._openapi import openapi_document
from mssante.bridge._ratelimit import TokenBuckets
from mssante.errors import AuthUnavailable, MssanteError, PSCError, TransportError, TrustError

__all__ = ["MAX_BODY", "SESSION_SECRET_HEADER", "json_error", "routes"]

log = logging.getLogger("mssante.bridge")
SESSION_SECRET_HEADER = "X-Session-Secret"  # noqa: S105 - a header name
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}  # RFC 6749 §5.1 for token answers
MAX_BODY = 16 * 1024  # bytes: every request body of this API is tiny (enforced by the server's BodyLimit)
_MAX_FORM_FIELDS = 8  # a back-channel logout form has one field (OIDC BCL 1.0 §2.5)
_FORM = "application/x-www-form-urlencoded"
_DONE_PAGE = ("<!doctype html><html lang=fr><meta charset=utf-8><title>Pro Santé Connect</title>"
              "<p>Connexion réussie. Vous pouvez fermer cette fenêtre et revenir au logiciel.</p></html>")

Handler = Callable[[Request], Awaitable[Response]]


def json_error(status: int, code: str, message: str, retry_after: str | None = None) -> JSONResponse:
    """The bridge's error answer ``{"error": code, "message": message}``, never cached.

    Raises:
        Nothing.
    """
    headers = dict(_NO_STORE)
    if retry_after:
        headers["Retry-After"] = retry_after
    if status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="mssante-bridge"'
    return JSONResponse({"error": code, "message": message}, status, headers=headers)


class _API:
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
                    self._limit(self.per_ip, _ip(request))
                return await handler(request)
            except BridgeError as exc:
                return json_error(exc.status, exc.code, exc.message, exc.retry_after)
            except (AuthUnavailable, TransportError, TrustError) as exc:
                return json_error(503, "unavailable", exc.message, "5")
            except PSCError as exc:
                return json_error(502, exc.oauth_error or "psc_error", exc.message)
            except MssanteError as exc:
                return json_error(400 if exc.fault in ("caller", "input") else 502, exc.error, exc.message)
            except Exception:  # never a traceback on the wire
                log.exception("bridge request failed: %s %s", request.method, request.url.path)
                return json_error(500, "internal_error", "the bridge failed to handle this request")

        return run

    def _limit(self, buckets: TokenBuckets, key: str, *, take: bool = True) -> None:
        wait = buckets.take(key) if take else buckets.blocked(key)
        if wait > 0:
            raise BridgeError(429, "rate_limited", "too many requests", retry_after=TokenBuckets.retry_after(wait))

    async def installation(self, request: Request) -> str:
        header = request.headers.get("authorization", "")
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
        ip = _ip(request)
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
        raw = await request.body()  # at most MAX_BODY: the server's BodyLimit refused more
        if not raw:
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
        installation_id = await self.installation(request)
        fresh = (await self.body(request)).get("fresh", False) is True
        _, record = await self.session(request, installation_id, fresh=fresh)
        token, expires_at = await self.core.access_token(record, fresh=fresh)
        expires_in = max(0, int(expires_at - self.core.clock()))
        return JSONResponse({"access_token": token.reveal(), "token_type": "Bearer", "expires_in": expires_in},
                            headers=_NO_STORE)

    async def logout(self, request: Request) -> Response:
        _, record = await self.session(request, allow_ended=True)
        if not record.ended:
            await self.core.logout(record)
        return Response(status_code=204)

    async def events(self, request: Request) -> Response:
        _, record = await self.session(request, allow_ended=True)
        queue = self.core.subscribe(record.session_id)
        return StreamingResponse(self._stream(record, queue), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    async def _stream(self, record: Any, queue: asyncio.Queue[tuple[str, dict[str, Any]]]) -> AsyncIterator[str]:
        session_id, core = record.session_id, self.core
        try:
            if record.ended:
                yield _sse("session_ended", {"reason": record.ended})
                return
            yield _sse("ready", {})
            while True:
                try:
                    event, data = await asyncio.wait_for(queue.get(), core.config.heartbeat)
                except TimeoutError:
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
            core.unsubscribe(session_id, queue)

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


def _ip(request: Request) -> str:
    client = request.scope.get("client")
    return str(client[0]) if client else ""


def _sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def routes(core: BridgeCore) -> list[Route]:
    """Return the API routes bound to ``core``.

    Raises:
        Nothing.
    """
    api = _API(core, LoginFlows(core))
    e = api.endpoint
    return [
        Route("/sessions/{session_id}/token", e(api.token), methods=["POST"]),  # first: the hot path
        Route("/health", e(api.health, limited=False), methods=["GET"]),
        Route("/openapi.json", e(api.openapi, limited=False), methods=["GET"]),
        Route("/logins", e(api.start_login), methods=["POST"]),
        Route("/logins/{login_id}", e(api.login_result), methods=["GET"]),
        Route("/callback", e(api.callback), methods=["GET"]),
        Route("/sessions/{session_id}/events", e(api.events), methods=["GET"]),
        Route("/sessions/{session_id}", e(api.logout), methods=["DELETE"]),
        Route("/backchannel-logout", e(api.backchannel_logout), methods=["POST"]),
    ]
