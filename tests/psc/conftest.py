"""Harness: the mock PSC under a real uvicorn server on 127.0.0.1, driven by ``mssante.psc``.

One uvicorn server per test session runs in a thread; each test installs a fresh ``MockPSC``
(with the lifetimes it needs) behind it. The mock and the relying parties share one
:class:`~mssante.testing.FakeClock`: token lifetimes pass when a test advances it, not in real
time. The server also plays the relying party's back-channel logout receiver: it stores the
logout tokens it receives.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import httpx2
import pytest

from mssante.clock import SYSTEM_CLOCK, Clock
from mssante.psc import PSCClient, PSCSettings
from mssante.sandbox.config import Lifetimes, PSCClientConfig, default_config
from mssante.sandbox.psc import MockPSC
from mssante.testing import FakeClock, login_through_page
from tests._asgi_server import ThreadedASGIServer
from tests.http._logs import no_log_errors

REALM = "/auth/realms/esante-wallet"
MARIE, LOUIS, CLAUDE = "899700000001", "899700000002", "899700000003"  # CLAUDE refuses CIBA
CLIENT_ID, CLIENT_SECRET = "rp-bridge", "rp-bridge-secret-0123456789abcdef"
CALLBACK = "http://127.0.0.1:8765/callback"  # registered without port (RFC 8252 §7.3)
LOGGED_OUT = "http://127.0.0.1/logged-out"
LIFETIMES = Lifetimes(access_token=60, refresh_token=300, sso_max=900, sso_idle=300, auth_code=30,
                      ciba_request=30, ciba_interval=1, ciba_approve_delay=1)


class Server(ThreadedASGIServer):
    """uvicorn in a thread on an ephemeral 127.0.0.1 port; ``target`` is the current mock's app."""


@dataclass
class Box:
    """One test's mock PSC and the relying parties built on it."""

    mock: MockPSC
    server: Server
    clock: FakeClock
    clients: list[PSCClient] = field(default_factory=list)

    @property
    def issuer(self) -> str:
        return self.mock.issuer

    @property
    def logout_tokens(self) -> list[str]:
        return self.server.logout_tokens

    def settings(self, **changes: Any) -> PSCSettings:
        info = {"psc": {"issuer": self.issuer, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}}
        return PSCSettings.from_sandbox(info).with_changes(**changes)

    def client(self, *, transport: httpx2.AsyncBaseTransport | None = None, **changes: Any) -> PSCClient:
        psc = PSCClient(self.settings(**changes), transport=transport, clock=self.clock)
        self.clients.append(psc)  # closed at teardown
        return psc


def make_mock(base: str, state_dir: Path, lifetimes: Lifetimes, clock: Clock = SYSTEM_CLOCK) -> MockPSC:
    """A mock PSC at ``base`` whose one client is ours, with a back-channel receiver at ``base``."""
    client = PSCClientConfig(
        client_id=CLIENT_ID, client_secret=CLIENT_SECRET, redirect_uris=("http://127.0.0.1/callback",),
        post_logout_redirect_uris=(LOGGED_OUT,), backchannel_logout_uri=f"{base}/rp/backchannel",
    )
    config = replace(default_config(), clients=(client,), lifetimes=lifetimes)
    return MockPSC(config, issuer=base + REALM, state_dir=state_dir, clock=clock)


@pytest.fixture(scope="session")
def psc_state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("psc-rp-state")


@pytest.fixture(scope="session")
def psc_server() -> Iterator[Server]:
    with Server() as server:
        yield server


@pytest.fixture
def lifetimes() -> Lifetimes:
    """Override in a test module (or with ``pytest.mark.parametrize``) for other lifetimes."""
    return LIFETIMES


@pytest.fixture
async def box(psc_server: Server, psc_state_dir: Path, lifetimes: Lifetimes) -> AsyncIterator[Box]:
    # A whole second, near the real time: JWT times are whole seconds, and a tokens' iat near now
    # keeps any check on the real clock (none is expected) from going wrong by decades.
    clock = FakeClock(start=float(int(time.time())))
    mock = make_mock(psc_server.base, psc_state_dir, lifetimes, clock)
    psc_server.target, psc_server.logout_tokens = mock.app, []
    sandbox = Box(mock, psc_server, clock)
    yield sandbox
    for client in sandbox.clients:
        await client.aclose()


async def login(url: str, national_id: str = MARIE, *, action: Literal["login", "cancel"] = "login") -> str:
    """Play the browser: open the login page, choose a professional, return the redirect Location."""
    async with httpx2.AsyncClient(trust_env=False) as browser:
        return await login_through_page(browser, url, national_id, action=action)


@pytest.fixture(autouse=True)
def _no_log_errors() -> Iterator[None]:
    """No test of this package may leave an error or a traceback in the log."""
    with no_log_errors():
        yield
