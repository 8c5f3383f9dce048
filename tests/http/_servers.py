"""The four HTTP apps, live on 127.0.0.1 under uvicorn, in a thread: bridge, sandbox API, mock PSC, webmail.

A thread of its own keeps the servers' event loop running while a (synchronous) hypothesis test
drives them with a blocking client. Each app's routes are listed the way a client would find
them: the bridge's and the sandbox API's from their OpenAPI documents, the mock PSC's and the
webmail's from their Starlette routes.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from starlette.routing import BaseRoute, Mount, Route

from mssante.bridge import Bridge, BridgeClient, TokenCipher
from mssante.sandbox.config import default_config
from mssante.sandbox.runner import Sandbox
from tests.bridge._support import MARIE, serving, world

PER = "marie.curie@mss.sandbox.test"
APP_BAL = "dpi.hopital@mss.sandbox.test"
MESSAGE = (b"From: sil.labo@mss.sandbox.test\r\nTo: marie.curie@mss.sandbox.test\r\nSubject: bonjour\r\n"
           b"Date: Wed, 05 Feb 2025 09:30:00 +0000\r\nMessage-ID: <1@mss.sandbox.test>\r\n\r\nbonjour\r\n")


@dataclass(frozen=True)
class Endpoint:
    """One route: its methods, its path template (``{name}`` or ``{name:int}``) and its app."""

    app: str
    methods: tuple[str, ...]
    path: str


@dataclass
class Servers:
    """What the tests need to reach the apps, filled in once they run."""

    tmp: Path
    bridge_url: str = ""
    sandbox_url: str = ""
    installation: tuple[str, str] = ("", "")
    session_id: str = ""
    session_secret: str = ""
    webmail_cookie: str = ""
    psc_prefix: str = ""
    endpoints: dict[str, list[Endpoint]] = field(default_factory=dict)
    error: BaseException | None = None

    def __post_init__(self) -> None:
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._states: list[Any] = []
        self._thread = threading.Thread(target=self._run, name="http-servers", daemon=True)

    def __enter__(self) -> Servers:
        self._thread.start()
        if not self._ready.wait(120):
            raise RuntimeError("the servers did not start")
        if self.error is not None:
            raise RuntimeError("the servers failed to start") from self.error
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to the test thread
            self.error = exc
            self._ready.set()

    async def _main(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        cipher = TokenCipher.generate()
        async with world(self.tmp / "bridge", self.tmp / "psc") as w:
            bridge = Bridge(w.config(), cipher=cipher)
            async with serving(bridge.app, w.bridge_socks[0], lifespan="on") as server, \
                    Sandbox(default_config(), self.tmp / "sandbox") as sandbox:
                assert sandbox.http is not None
                self._states = [server.server_state, sandbox.http.server_state()]
                self.bridge_url = w.config().base_url
                secret = await bridge.core.add_installation("cab-a")
                self.installation = ("cab-a", secret)
                async with BridgeClient(self.bridge_url, "cab-a", secret) as client:
                    source = await client.login_with_ciba(MARIE)
                self.session_id, self.session_secret = source.session_id, source._secret.reveal()
                await sandbox.store.deliver(PER, MESSAGE)
                self.sandbox_url = sandbox.info["webmail_url"].rstrip("/")
                self.psc_prefix = urlsplit(sandbox.psc.issuer).path
                await asyncio.to_thread(self._list_endpoints, sandbox.http.starlette.routes, sandbox.psc.routes)
                self._ready.set()
                await self._stop.wait()

    def wait_idle(self, timeout: float = 10) -> bool:
        """Wait until no request is being handled by any server (their handlers are done); False on timeout."""
        deadline = time.monotonic() + timeout
        while any(state.tasks for state in self._states):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def _list_endpoints(self, sandbox_routes: list[BaseRoute], psc_routes: list[BaseRoute]) -> None:
        self.endpoints["bridge"] = _from_openapi("bridge", _get_json(self.bridge_url + "/openapi.json"))
        self.endpoints["api"] = _from_openapi("api", _get_json(self.sandbox_url + "/api/openapi.json"))
        psc: list[Endpoint] = []
        webmail: list[Endpoint] = []
        for route in sandbox_routes:
            if isinstance(route, Mount) and route.path == self.psc_prefix:  # the mock PSC
                psc += [Endpoint("psc", tuple(sorted(r.methods or ())), r.path) for r in psc_routes
                        if isinstance(r, Route)]
            elif isinstance(route, Mount):
                webmail.append(Endpoint("webmail", ("GET",), route.path + "/{path}"))  # /static
            elif isinstance(route, Route) and not route.path.startswith("/api"):
                webmail.append(Endpoint("webmail", tuple(sorted((route.methods or set()) - {"HEAD"})), route.path))
        self.endpoints["psc"], self.endpoints["webmail"] = psc, webmail


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as answer:  # loopback URL of our own server
        return json.loads(answer.read())


def _from_openapi(app: str, document: dict[str, Any]) -> list[Endpoint]:
    endpoints = []
    for path, item in document["paths"].items():
        methods = tuple(sorted(m.upper() for m in item if m in ("get", "post", "put", "patch", "delete")))
        endpoints.append(Endpoint(app, methods, path))
    return endpoints


def path_names(template: str) -> list[tuple[str, str]]:
    """``(name, convertor)`` of each parameter of a path template."""
    return [(m.group(1), m.group(2) or "str") for m in re.finditer(r"{(\w+)(?::(\w+))?}", template)]


def fill(template: str, name: str, value: str) -> str:
    """Put ``value`` in place of parameter ``name`` (``{name}`` or ``{name:convertor}``) of a path template."""
    return re.sub("{" + re.escape(name) + r"(?::\w+)?}", lambda _: value, template)
