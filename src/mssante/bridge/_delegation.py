"""Delegation of a bridge session to another installation (a fleet of workers): hand over tokens, never secrets.

An LPS whose professional signed in through the bridge owns the session: its installation
credential plus the session secret. To have the professional's BALs watched by a fleet of workers
(:mod:`mssante.fleet`) on other machines, the owner *delegates* the session to the fleet's own
installation::

    POST   /sessions/{id}/delegations                  {"installation_id": "fleet"}   (owner)
    GET    /sessions/{id}/delegations                                                 (owner)
    DELETE /sessions/{id}/delegations/{installation}                                  (owner)
    POST   /delegated/{id}/token                       {"fresh": false}               (delegate)
    GET    /delegated/{id}/events                      server-sent events              (delegate)

The delegation is recorded in the session record itself (``delegates``), so it lives and dies with
the session in either store (SQLite or Redis) and needs no table or key of its own. A delegate
authenticates with *its own* installation credential only (HTTP Basic, one secret per worker
configuration, not per session): the session id, which the fleet keeps in Redis as the BAL's
credential reference, is not a secret, because it opens nothing without a delegate installation's
credential and a delegation recorded by the owner.

A delegate gets access tokens (the same cache, refresh lock and refresh-ahead as the owner's
requests: one PSC session, one refresh at a time, RFC 9700 §4.14.2) and the session's events;
it cannot log the session out, nor delegate it further, nor see the delegations (403
``delegate_forbidden`` on its routes; the owner's routes answer it the one 404 of a wrong session
secret). The owner revokes a delegation when it wishes: the delegate's event streams then get
``delegation_revoked`` and close, and its token requests answer 404. A session end (logout,
back-channel logout, refresh refused) ends every delegation with it: the delegates' streams get
``session_ended`` (ECO.1.2.6) and their token requests answer 410.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncGenerator, Awaitable, Callable
from json.encoder import encode_basestring_ascii
from typing import TYPE_CHECKING, Any, Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mssante._asgi_guard import Receive, Scope, Send
from mssante.bridge._core import BridgeCore
from mssante.bridge._errors import BridgeError, ended, not_found
from mssante.bridge._records import SessionRecord
from mssante.errors import MssanteError

if TYPE_CHECKING:
    from mssante.bridge._app import API

__all__ = ["MAX_DELEGATES", "REVOKED", "Delegations", "delegation_paths", "delegation_routes"]

#: Installations one session may be delegated to at once (a fleet, a standby fleet, a migration...).
MAX_DELEGATES: Final = 8
#: The event a delegate's streams receive when the owner revokes its delegation (``{"installation": id}``).
REVOKED: Final = "delegation_revoked"
_NO_STORE: Final = {"Cache-Control": "no-store", "Pragma": "no-cache"}  # RFC 6749 §5.1 for token answers
_REVOKED_EVENT: Final = f"event: {REVOKED}\n"
_SWAP_TRIES: Final = 10


def forbidden(what: str) -> BridgeError:
    """The answer to a delegate asking for what only the session's owner may do."""
    return BridgeError(403, "delegate_forbidden", f"a delegate installation cannot {what}; the session's owner can")


def _valid_id(installation_id: Any) -> str:
    if (not isinstance(installation_id, str) or not installation_id or len(installation_id) > 128
            or not all(c.isalnum() or c in "._-" for c in installation_id)):
        raise BridgeError(400, "invalid_request", "installation_id must be an installation id ([A-Za-z0-9._-])")
    return installation_id


class Delegations:
    """The delegation rules over one :class:`~mssante.bridge._core.BridgeCore` (no HTTP here)."""

    def __init__(self, core: BridgeCore) -> None:
        """Use ``core``'s store, cache, events and audit."""
        self.core = core

    async def delegate(self, record: SessionRecord, installation_id: str) -> tuple[str, ...]:
        """Delegate the owner's session ``record`` to ``installation_id`` (idempotent); return the delegates.

        Raises:
            BridgeError: 400 ``invalid_request`` (bad id, the owner itself, too many delegates),
                404 ``installation_not_found``, 404/410 the session vanished or ended meanwhile.
            AuthUnavailable: the store is unreachable.
        """
        installation_id = _valid_id(installation_id)
        if installation_id == record.installation_id:
            raise BridgeError(400, "invalid_request", "a session cannot be delegated to its own installation")
        if await self.core.store.installation_hash(installation_id) is None:
            raise BridgeError(404, "installation_not_found", f"no installation {installation_id!r} at this bridge")

        def add(delegates: tuple[str, ...]) -> tuple[str, ...] | None:
            if installation_id in delegates:
                return None
            if len(delegates) >= MAX_DELEGATES:
                raise BridgeError(400, "invalid_request", f"a session has at most {MAX_DELEGATES} delegates")
            return (*delegates, installation_id)

        after = await self._change(record.session_id, add)
        self.core.audit.record("delegate", "ok", installation=record.installation_id, session=record.session_id,
                               detail=installation_id)
        return after

    async def revoke(self, record: SessionRecord, installation_id: str) -> None:
        """End the delegation of the owner's session ``record`` to ``installation_id``.

        The delegate's event streams get :data:`REVOKED` and close; its next token request answers 404.

        Raises:
            BridgeError: 404 ``delegation_not_found`` (no such delegation), 404/410 the session
                vanished or ended meanwhile.
            AuthUnavailable: the store is unreachable.
        """
        def drop(delegates: tuple[str, ...]) -> tuple[str, ...] | None:
            if installation_id not in delegates:
                raise BridgeError(404, "delegation_not_found", "this session is not delegated to that installation")
            return tuple(d for d in delegates if d != installation_id)

        await self._change(record.session_id, drop)
        with contextlib.suppress(MssanteError):  # the record (without it) is stored: the event only hurries it
            await self.core.store.publish(record.session_id, REVOKED, {"installation": installation_id})
        self.core.audit.record("revoke_delegation", "ok", installation=record.installation_id,
                               session=record.session_id, detail=installation_id)

    async def _change(self, session_id: str, change: Callable[[tuple[str, ...]], tuple[str, ...] | None]
                      ) -> tuple[str, ...]:
        """Rewrite the session's delegates with ``change`` (compare-and-swap on the record's version)."""
        store, config = self.core.store, self.core.config
        for _ in range(_SWAP_TRIES):
            current = await store.get_session(session_id)
            if current is None:
                raise not_found()
            if current.ended:
                raise ended(current.ended)
            delegates = change(tuple(current.delegates))
            if delegates is None:
                return tuple(current.delegates)
            new = current.bump(delegates=delegates)
            if await store.swap_session(new, config.session_ttl):
                with contextlib.suppress(MssanteError):  # every replica drops its cached copy
                    await store.publish(session_id, "session_changed", {"version": new.version})
                return delegates
        raise BridgeError(503, "busy", "the session changed too often; try again", retry_after="1")

    async def delegated(self, installation_id: str, session_id: str, *, fresh: bool = False,
                        allow_ended: bool = False) -> SessionRecord:
        """The session ``session_id`` if it is delegated to ``installation_id`` (authenticated before).

        Raises:
            BridgeError: 404 ``session_not_found`` (unknown, not delegated to it, revoked: one answer
                for all), 410 ``session_ended`` (the session is over, and its delegations with it).
            AuthUnavailable: the store is unreachable.
        """
        record = await self.core.current_session(session_id, fresh=fresh) if len(session_id) <= 64 else None
        if record is None or installation_id not in record.delegates:
            raise not_found()
        if record.ended and not allow_ended:
            raise ended(record.ended)
        return record


class DelegationAPI:
    """The HTTP face of :class:`Delegations`, on the bridge's :class:`~mssante.bridge._app.API`."""

    def __init__(self, api: API) -> None:
        """Answer with ``api``'s authentication, rate limits and error answers."""
        self.api = api
        self.rules = Delegations(api.core)

    # -- the owner ------------------------------------------------------------------------------
    async def add(self, request: Request) -> Response:
        _, record = await self.api.session(request)
        data = await self.api.body(request)
        delegates = await self.rules.delegate(record, _valid_id(data.get("installation_id")))
        return JSONResponse({"session_id": record.session_id, "delegates": list(delegates)}, 201, headers=_NO_STORE)

    async def list(self, request: Request) -> Response:
        _, record = await self.api.session(request, fresh=True)
        return JSONResponse({"session_id": record.session_id, "delegates": list(record.delegates)},
                            headers=_NO_STORE)

    async def remove(self, request: Request) -> Response:
        _, record = await self.api.session(request)
        await self.rules.revoke(record, str(request.path_params["installation_id"]))
        return Response(status_code=204)

    # -- the delegate -----------------------------------------------------------------------------
    async def _delegate(self, request: Request, **kwargs: Any) -> tuple[str, SessionRecord]:
        installation_id = await self.api.installation(request)
        record = await self.rules.delegated(installation_id, str(request.path_params["session_id"]), **kwargs)
        return installation_id, record

    async def token(self, request: Request) -> Response:
        fresh = (await self.api.body(request)).get("fresh", False) is True
        _, record = await self._delegate(request, fresh=fresh)
        token, expires_at = await self.api.core.access_token(record, fresh=fresh)
        expires_in = max(0, int(expires_at - self.api.core.clock()))
        answer = b'{"access_token":%s,"token_type":"Bearer","expires_in":%d}' % (
            encode_basestring_ascii(token.reveal()).encode(), expires_in)
        return Response(answer, media_type="application/json", headers=_NO_STORE)

    async def events(self, scope: Scope, receive: Receive, send: Send) -> None:
        """``GET /delegated/{id}/events`` as an ASGI endpoint: one task per held stream, as the owners' streams
        (:meth:`~mssante.bridge._app.API.serve_stream`), not Starlette's streaming response and its task group.

        Subscribing also schedules the session's refresh ahead, as for the owner.
        """
        from mssante.bridge._app import _error_answer  # _app imports this module

        api = self.api
        request = Request(scope)
        try:
            ip = request.client.host if request.client else ""
            api._limit(api.per_ip, ip)
            installation_id = await api.installation_of(request.headers.get("authorization", ""), ip)
            record = await self.rules.delegated(installation_id, str(request.path_params["session_id"]),
                                                allow_ended=True)
        except Exception as exc:
            await _error_answer(exc, "GET", scope["path"])(scope, receive, send)
            return
        await api.serve_stream(receive, send, record.session_id,
                               lambda queue: self._stream(installation_id, record, queue))

    async def _stream(self, installation_id: str, record: SessionRecord,
                      queue: asyncio.Queue[tuple[str, dict[str, Any]]]) -> AsyncGenerator[str]:
        """The owner's event stream (``ready``, ``refresh_failed``, ``session_ended``, heartbeats), plus
        ``delegation_revoked`` for this delegate, which closes it; other delegates' revocations are not shown.

        At each heartbeat the delegation is looked at again (the session record, from this process's
        cache while the store's events are current), so that a revocation whose event was lost (a
        Redis subscription re-established) still closes the stream.
        """
        core, session_id = self.api.core, record.session_id
        revoked = _sse(REVOKED, {"installation": installation_id})
        async with contextlib.aclosing(self.api._stream(record, queue)) as stream:  # unsubscribes in any case
            async for text in stream:
                if text.startswith(_REVOKED_EVENT):
                    if text == revoked:
                        yield text
                        return
                    continue  # another delegate's
                if text.startswith(":"):
                    try:
                        current = await core.current_session(session_id)
                    except MssanteError:  # the store is away: the owner's stream looks again later
                        current = None
                    if current is not None and not current.ended and installation_id not in current.delegates:
                        yield revoked
                        return
                yield text

    async def refused_logout(self, request: Request) -> Response:
        await self._delegate(request, allow_ended=True)
        raise forbidden("log the session out")

    async def refused_delegation(self, request: Request) -> Response:
        await self._delegate(request, allow_ended=True)
        raise forbidden("delegate the session or see its delegations")


class _ASGIEndpoint:
    """An ASGI callable Starlette routes as such (a bound method would be wrapped as a request handler)."""

    def __init__(self, serve: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.serve = serve

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.serve(scope, receive, send)


def _sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def delegation_routes(api: API) -> list[Route]:
    """The delegation routes, answered with ``api``'s plumbing (authentication, limits, JSON errors)."""
    d, e = DelegationAPI(api), api.endpoint
    return [
        Route("/sessions/{session_id}/delegations", e(d.add), methods=["POST"]),
        Route("/sessions/{session_id}/delegations", e(d.list), methods=["GET"]),
        Route("/sessions/{session_id}/delegations/{installation_id}", e(d.remove), methods=["DELETE"]),
        Route("/delegated/{session_id}/token", e(d.token), methods=["POST"]),
        Route("/delegated/{session_id}/events", _ASGIEndpoint(d.events), methods=["GET"]),
        Route("/delegated/{session_id}", e(d.refused_logout), methods=["DELETE"]),
        Route("/delegated/{session_id}/delegations", e(d.refused_delegation), methods=["GET", "POST"]),
    ]


def delegation_paths(error: Any, json_body: Any, token: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI paths of the delegation routes (``error``/``json_body`` build responses as the document does)."""
    session = [{"name": "session_id", "in": "path", "required": True, "schema": {"type": "string"}}]
    owner: list[dict[str, list[str]]] = [{"installation": [], "session": []}]
    delegate: list[dict[str, list[str]]] = [{"installation": []}]
    common = {"401": error("installation credentials missing or wrong"), "429": error("rate limited (Retry-After)")}
    listing = json_body("the session's delegates", {"type": "object", "properties": {
        "session_id": {"type": "string"}, "delegates": {"type": "array", "items": {"type": "string"}}}})
    forbidden_answer = error("delegate_forbidden: only the session's owner may do this")
    return {
        "/sessions/{session_id}/delegations": {
            "post": {"summary": "Delegate the session to another installation (a fleet): tokens and events, "
                                "no logout, no further delegation", "security": owner, "parameters": session,
                     "requestBody": {"required": True, "content": {"application/json": {"schema": {
                         "type": "object", "required": ["installation_id"],
                         "properties": {"installation_id": {"type": "string"}}}}}},
                     "responses": {"201": listing, "400": error("invalid_request (the owner itself, too many)"),
                                   "404": error("session_not_found or installation_not_found"),
                                   "410": error("session_ended"), **common}},
            "get": {"summary": "The installations this session is delegated to", "security": owner,
                    "parameters": session,
                    "responses": {"200": listing, "404": error("unknown session"), **common}}},
        "/sessions/{session_id}/delegations/{installation_id}": {"delete": {
            "summary": "Revoke a delegation (the delegate's streams get delegation_revoked and close)",
            "security": owner, "parameters": [*session, {"name": "installation_id", "in": "path", "required": True,
                                                         "schema": {"type": "string"}}],
            "responses": {"204": {"description": "revoked"},
                          "404": error("session_not_found or delegation_not_found"), **common}}},
        "/delegated/{session_id}/token": {"post": {
            "summary": "A valid access token for a session delegated to this installation", "security": delegate,
            "parameters": session,
            "requestBody": {"content": {"application/json": {"schema": {"type": "object", "properties": {
                "fresh": {"type": "boolean"}}}}}},
            "responses": {"200": json_body("token", token), "404": error("not delegated to this installation"),
                          "410": error("session_ended"), "503": error("refresh_failed (retry)"), **common}}},
        "/delegated/{session_id}/events": {"get": {
            "summary": "Server-sent events of a delegated session: ready, refresh_failed, session_ended, "
                       "delegation_revoked", "security": delegate, "parameters": session,
            "responses": {"200": {"description": "event stream", "content": {"text/event-stream": {}}},
                          "404": error("not delegated to this installation"), **common}}},
        "/delegated/{session_id}": {"delete": {
            "summary": "Refused: a delegate cannot log the session out", "security": delegate,
            "parameters": session, "responses": {"403": forbidden_answer, "404": error("not delegated"), **common}}},
    }
