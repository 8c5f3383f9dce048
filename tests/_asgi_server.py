"""An ASGI app served by uvicorn in a thread on an ephemeral 127.0.0.1 port, for the PSC tests.

Serving from a thread keeps the server running while each test's own event loop drives it.
``target`` is the app currently mounted at "/" (tests install a fresh mock PSC in it), next to
``/rp/backchannel``, a relying party's back-channel logout receiver collecting logout tokens.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route


class ThreadedASGIServer:
    """uvicorn in a thread; use as a context manager."""

    def __init__(self) -> None:
        self.target: Any = None
        self.logout_tokens: list[str] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.base = f"http://127.0.0.1:{self.sock.getsockname()[1]}"

        async def backchannel(request: Request) -> Response:
            self.logout_tokens.append(str((await request.form())["logout_token"]))
            return Response(status_code=200)

        async def dispatch(scope: Any, receive: Any, send: Any) -> None:
            await self.target(scope, receive, send)

        # The mock is mounted at "/" next to another route, as the sandbox does.
        app = Starlette(routes=[Route("/rp/backchannel", backchannel, methods=["POST"]), Mount("/", app=dispatch)])
        config = uvicorn.Config(app, log_level="warning", lifespan="off", ws="none", http="h11")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=lambda: asyncio.run(self.server.serve(sockets=[self.sock])))

    def __enter__(self) -> Any:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()
