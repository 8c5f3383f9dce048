"""Assembling and serving the bridge: :class:`Bridge` (the ASGI app plus its engine) and :func:`serve`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from mssante._asgi_guard import ASGIApp, BodyLimit, Scope
from mssante.bridge._app import API, MAX_BODY, Front, json_error, routes
from mssante.bridge._audit import Audit
from mssante.bridge._config import BridgeConfig
from mssante.bridge._core import BridgeCore
from mssante.bridge._crypto import TokenCipher
from mssante.bridge._logins import LoginFlows
from mssante.bridge._proxy import TrustedProxies
from mssante.bridge._records import SessionStore
from mssante.bridge._sqlite import SQLiteStore
from mssante.clock import SYSTEM_CLOCK, Clock
from mssante.psc import PSCClient

__all__ = ["Bridge", "open_store", "serve", "uvicorn_config"]

log = logging.getLogger("mssante.bridge")


def open_store(config: BridgeConfig) -> SessionStore:
    """Return the store named by ``config.store`` (not yet started).

    Raises:
        ConfigError: the store URL is invalid.
    """
    path = config.sqlite_path
    if path is not None:
        return SQLiteStore(path)
    from mssante.bridge._redis import RedisStore  # redis-py is only needed for this back end

    return RedisStore(config.store, pool_size=config.redis_pool_size, pool_timeout=config.redis_pool_timeout)


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    code, message = {404: ("not_found", "no such endpoint"), 405: ("method_not_allowed", "method not allowed here"),
                     }.get(status, ("invalid_request", "the request is malformed"))
    return json_error(status, code, message)


def _refuse(scope: Scope, status: int, message: str) -> ASGIApp:
    code = {413: "too_large", 415: "unsupported_media_type"}.get(status, "invalid_request")
    return json_error(status, code, message)


class Bridge:
    """One bridge process: the Starlette app (:attr:`app`) and its :class:`BridgeCore` (:attr:`core`).

    The app's lifespan starts and stops the core; without a lifespan (tests, embedding) use
    ``async with bridge:``.
    """

    def __init__(self, config: BridgeConfig, *, cipher: TokenCipher, store: SessionStore | None = None,
                 psc: PSCClient | None = None, clock: Clock = SYSTEM_CLOCK) -> None:
        """Build the bridge; nothing is opened yet.

        Raises:
            ConfigError: the store URL is invalid.
        """
        self.config = config
        self._own_psc = psc is None
        self.psc = psc if psc is not None else PSCClient(config.psc, clock=clock)
        self.core = BridgeCore(config, store=store if store is not None else open_store(config), psc=self.psc,
                               cipher=cipher, audit=Audit(config.audit_file), clock=clock)
        self._started = False
        api = API(self.core, LoginFlows(self.core))
        starlette: ASGIApp = Starlette(routes=routes(api), lifespan=self._lifespan,
                                       exception_handlers={HTTPException: _http_error})
        proxies = TrustedProxies(starlette, config.proxy_networks) if config.proxy_headers else None
        guard = BodyLimit(proxies or starlette, limit=MAX_BODY, refuse=_refuse)
        self.app: ASGIApp = Front(api, guard, guard, proxies)

    def __repr__(self) -> str:
        return f"Bridge({self.config.base_url!r}, store={self.core.store!r})"

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Any) -> AsyncIterator[None]:
        async with self:
            yield

    async def __aenter__(self) -> Bridge:
        if not self._started:
            await self.core.start()
            self._started = True
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop the engine, close the store and (if it made it) the PSC client."""
        if self._started:
            self._started = False
            await self.core.aclose()
            if self._own_psc:
                await self.psc.aclose()


def uvicorn_config(app: ASGIApp, config: BridgeConfig) -> Any:
    """The ``uvicorn.Config`` :func:`serve` runs ``app`` with (benchmarks serve their baseline with it too).

    Forwarding headers are handled by the bridge itself (:class:`TrustedProxies`, with CIDR
    networks), so uvicorn's own ``proxy_headers`` stays off.
    """
    import uvicorn

    return uvicorn.Config(app, host=config.host, port=config.port, log_level="info", lifespan="on",
                          proxy_headers=False, access_log=config.access_log, timeout_graceful_shutdown=5)


async def serve(config: BridgeConfig, cipher: TokenCipher, *, stop: asyncio.Event | None = None) -> None:
    """Serve the bridge with uvicorn on ``config.host:config.port`` until ``stop`` is set (or a signal).

    Raises:
        ConfigError: the store cannot be opened.
        TransportError: the port cannot be bound.
    """
    import uvicorn

    bridge = Bridge(config, cipher=cipher)
    server = uvicorn.Server(uvicorn_config(bridge.app, config))
    if stop is None:
        await server.serve()
        return
    task = asyncio.create_task(server.serve())
    await stop.wait()
    server.should_exit = True
    await task
