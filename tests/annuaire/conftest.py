"""The mock Annuaire Santé served by uvicorn over loopback (a thread), mounted where the sandbox mounts it."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount

from mssante.sandbox.annuaire import ANNUAIRE_PATH, SANDBOX_API_KEY, AnnuaireMock
from mssante.sandbox.config import default_config


@dataclass
class Served:
    """A running mock: its FHIR base URL, API key and the mock itself (for its access log)."""

    base_url: str
    api_key: str
    mock: AnnuaireMock


@pytest.fixture(scope="module")
def annuaire() -> Iterator[Served]:
    mock = AnnuaireMock(default_config())
    app = Starlette(routes=[Mount(ANNUAIRE_PATH, app=mock.app)])
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", ws="none", http="h11"))
    # The socket already listens: requests sent before uvicorn runs wait in its backlog, no start-up polling.
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True)
    thread.start()
    port = sock.getsockname()[1]
    yield Served(f"http://127.0.0.1:{port}{ANNUAIRE_PATH}", SANDBOX_API_KEY, mock)
    server.should_exit = True
    thread.join(10)
    sock.close()
