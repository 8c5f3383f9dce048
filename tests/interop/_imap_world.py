"""Both IMAP servers of the interop tests on loopback: the sandbox's PSC front and Dovecot 2.3.

Not a test module: ``test_imap_differential.py`` and ``test_imapclient_livetest.py`` import the
:func:`world` fixture. One mock PSC (served over HTTP for Dovecot's introspection, called in
process by the sandbox) issues the tokens both servers accept; Dovecot has the sandbox's folders
(``special_use=True``); the sandbox front runs in its own event loop thread.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from mssante.sandbox.config import default_config
from mssante.sandbox.fronts._adapters import PKICertificateChecker, PSCTokenVerifier
from mssante.sandbox.fronts.authz import AccessDecider
from mssante.sandbox.fronts.faults import Faults
from mssante.sandbox.fronts.imap import IMAPFront
from mssante.sandbox.fronts.journal import Journal
from mssante.sandbox.fronts.store import MailStore
from mssante.sandbox.pki import TestPKI
from mssante.sandbox.psc import MockPSC
from tests._asgi_server import ThreadedASGIServer
from tests.interop.dovecot import DovecotServer, skip_unless_dovecot
from tests.interop.imap_corpus import MESSAGES
from tests.interop.imap_diff import WireSession

__all__ = ["CFG", "HOST", "MARIE", "PER", "Server", "World", "teardown_on", "world"]

CFG = default_config()
PER = f"marie.curie@{CFG.domain}"
MARIE = "899700000001"
CLIENT = CFG.clients[0]
REALM = "/auth/realms/esante-wallet"
HOST = "127.0.0.1"


@dataclass
class Server:
    name: str
    port: int
    world: World
    uid_offset: int = 0

    def measure_uid_base(self) -> None:
        """Find the server's first UID in a fresh folder (``uid-base`` in ALLOWED)."""
        admin = self.login()
        try:
            teardown_on(admin, b"diff-probe")
            admin.command(b"CREATE diff-probe")
            answer = admin.command(b"APPEND diff-probe %L", literals=[MESSAGES["plain"]])
            match = re.search(rb"\[APPENDUID \d+ (\d+)\]", answer.lines[-1])
            assert match is not None, (self.name, answer.lines)
            self.uid_offset = int(match.group(1)) - 1
            teardown_on(admin, b"diff-probe")
        finally:
            admin.close()

    def login(self) -> WireSession:
        session = WireSession(HOST, self.port)
        session.starttls(self.world.pki.client_ssl_context())
        token = self.world.token()
        blob = base64.b64encode(f"user={PER}\x01auth=Bearer {token}\x01\x01".encode())
        answer = session.command(b"AUTHENTICATE XOAUTH2 " + blob)
        assert answer.lines[-1].startswith(b"TAG OK"), (self.name, answer.lines)
        return session


@dataclass
class World:
    pki: TestPKI
    psc: MockPSC
    servers: list[Server]

    def token(self) -> str:
        """A fresh PSC access token of MARIE (holder of :data:`PER`)."""
        return str(self.psc.issue_tokens_for_tests(MARIE, CLIENT.client_id)["access_token"])


class _Loop:
    """An asyncio loop in a thread, for the sandbox front."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    skip_unless_dovecot()
    state = tmp_path_factory.mktemp("imap-diff")
    pki = TestPKI.load_or_create(state / "pki", server_names=CFG.server_names, crl_base_url="http://127.0.0.1:9")
    http = ThreadedASGIServer()  # the mock PSC answers Dovecot's introspection requests
    issuer = f"{http.base}{REALM}"
    psc = MockPSC(CFG, issuer=issuer, state_dir=state / "psc")
    http.target = psc.app
    http.__enter__()
    dovecot = DovecotServer(pki=pki, introspection_url=f"{issuer}/protocol/openid-connect/token/introspect",
                            client_id=CLIENT.client_id, client_secret=CLIENT.client_secret, config=CFG,
                            special_use=True)
    loop = _Loop()
    faults = Faults()
    store = MailStore(CFG)
    decider = AccessDecider(CFG, PSCTokenVerifier(psc), PKICertificateChecker(pki), faults)
    front = IMAPFront(CFG, decider, Journal(), faults, store, pki.server_ssl_context(), front="psc")
    try:
        dovecot.start()
        port = loop.run(front.start(HOST, 0))
        result = World(pki=pki, psc=psc, servers=[])
        result.servers = [Server("sandbox", port, result), Server("dovecot", dovecot.imap_port, result)]
        for server in result.servers:
            server.measure_uid_base()
        yield result
    finally:
        with contextlib.suppress(Exception):
            loop.run(front.aclose())
        loop.stop()
        dovecot.stop()
        http.__exit__()


def teardown_on(admin: WireSession, folder: bytes) -> None:
    listing = admin.command(b'LIST "" "' + folder + b'*"')
    names = []
    for line in listing.lines:
        if line.startswith(b"* LIST"):
            names.append(line.rstrip(b"\r\n").rsplit(b" ", 1)[1].strip(b'"'))
    for name in sorted(names, key=len, reverse=True):
        admin.command(b"DELETE " + name)


