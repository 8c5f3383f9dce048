"""Real components on 127.0.0.1 for the bridge tests: mock PSC, bridges under uvicorn, Redis."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field, replace
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx2
import uvicorn

from mssante.bridge import Bridge, BridgeConfig, RateLimit, TokenCipher
from mssante.psc import PSCSettings
from mssante.sandbox.config import Lifetimes, PSCClientConfig, SandboxConfig, default_config
from mssante.sandbox.psc import MockPSC

REALM = "/auth/realms/esante-wallet"
MARIE, LOUIS, CLAUDE = "899700000001", "899700000002", "899700000003"  # CLAUDE refuses CIBA
CLIENT_ID, CLIENT_SECRET = "bridge", "bridge-secret"
#: Access tokens live 2 s so a test sees several lifetimes; CIBA is approved after 1 s.
LIFETIMES = Lifetimes(access_token=2, refresh_token=60, sso_max=300, sso_idle=60, auth_code=30,
                      ciba_request=30, ciba_interval=1, ciba_approve_delay=1)


def bind() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def base_url(sock: socket.socket) -> str:
    return f"http://127.0.0.1:{sock.getsockname()[1]}"


@contextlib.asynccontextmanager
async def serving(app: Any, sock: socket.socket, lifespan: str = "off") -> AsyncIterator[uvicorn.Server]:
    """Run ``app`` under uvicorn in this event loop on an already bound socket."""
    config = uvicorn.Config(app, log_level="warning", lifespan=lifespan, ws="none", http="h11", proxy_headers=False,
                            timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    deadline = time.monotonic() + 10
    while not server.started:
        if task.done() or time.monotonic() > deadline:
            await task
            raise RuntimeError("uvicorn did not start")
        await asyncio.sleep(0.01)
    try:
        yield server
    finally:
        server.should_exit = True
        await task
        sock.close()


class Recorder:
    """ASGI wrapper of the mock PSC: counts refresh grants and remembers every token it issued."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.refreshes = 0
        self.issued: set[str] = set()
        self.refresh_tokens: set[str] = set()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].endswith("/protocol/openid-connect/token"):
            await self.app(scope, receive, send)
            return
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        if b"grant_type=refresh_token" in body:
            self.refreshes += 1
        replayed = False
        chunks: list[bytes] = []

        async def replay() -> Any:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        async def capture(message: Any) -> None:
            if message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if not message.get("more_body"):
                    with contextlib.suppress(ValueError, AttributeError):
                        answer = json.loads(b"".join(chunks))
                        for name in ("access_token", "refresh_token", "id_token"):
                            if answer.get(name):
                                self.issued.add(answer[name])
                        if answer.get("refresh_token"):
                            self.refresh_tokens.add(answer["refresh_token"])
            await send(message)

        await self.app(scope, replay, capture)


@dataclass
class World:
    """A mock PSC and the settings a bridge needs to use it."""

    psc: MockPSC
    recorder: Recorder
    psc_url: str
    bridge_socks: list[socket.socket]
    tmp: Path
    bridges: list[Bridge] = field(default_factory=list)

    @property
    def settings(self) -> PSCSettings:
        return PSCSettings(issuer=self.psc.issuer, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, leeway=5,
                           ciba_slow_down_step=1, timeout=5)

    def config(self, index: int = 0, **changes: Any) -> BridgeConfig:
        port = self.bridge_socks[index].getsockname()[1]
        base = BridgeConfig(psc=self.settings, store=f"sqlite:{self.tmp / 'bridge.sqlite3'}", host="127.0.0.1",
                            port=port, refresh_margin=1.0, heartbeat=1.0, introspect_interval=0, refresh_ahead=False,
                            per_installation=RateLimit(rate=500, burst=500), per_ip=RateLimit(rate=1000, burst=1000))
        return replace(base, **changes)


def mock_config(bridge_url: str) -> SandboxConfig:
    client = PSCClientConfig(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, redirect_uris=("http://127.0.0.1/callback",),
                             backchannel_logout_uri=f"{bridge_url}/backchannel-logout")
    return replace(default_config(), clients=(client,), lifetimes=LIFETIMES)


@contextlib.asynccontextmanager
async def world(tmp: Path, state_dir: Path, replicas: int = 1, lifetimes: Lifetimes = LIFETIMES
                ) -> AsyncIterator[World]:
    """Start a mock PSC (back-channel logout to replica 0) and reserve sockets for the bridges."""
    psc_sock = bind()
    socks = [bind() for _ in range(replicas)]
    config = replace(mock_config(base_url(socks[0])), lifetimes=lifetimes)
    psc = MockPSC(config, issuer=base_url(psc_sock) + REALM, state_dir=state_dir)
    recorder = Recorder(psc.app)
    try:
        async with serving(recorder, psc_sock):
            yield World(psc=psc, recorder=recorder, psc_url=base_url(psc_sock), bridge_socks=socks, tmp=tmp)
    finally:
        for sock in socks:
            sock.close()


@contextlib.asynccontextmanager
async def running_bridge(w: World, index: int = 0, *, cipher: TokenCipher, **changes: Any) -> AsyncIterator[Bridge]:
    bridge = Bridge(w.config(index, **changes), cipher=cipher)
    w.bridges.append(bridge)
    async with serving(bridge.app, w.bridge_socks[index], lifespan="on"):
        yield bridge


class _Form(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.hidden: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.action = a["action"]
        elif tag == "input" and a.get("type") == "hidden":
            self.hidden.append((a["name"], a["value"]))


async def browser_login(url: str, national_id: str = MARIE) -> str:
    """Play the user's browser on the mock's login page; return the redirect to the bridge's callback.

    A Chromium/playwright variant can replace this function: it only needs to return the URL
    the browser was redirected to (or to follow it itself).
    """
    async with httpx2.AsyncClient(trust_env=False) as browser:
        page = await browser.get(url)
        assert page.status_code == 200, page.text
        form = _Form()
        form.feed(page.text)
        data = dict([*form.hidden, ("national_id", national_id), ("auth_mode", "CARD"), ("action", "login")])
        answer = await browser.post(form.action, data=data)
        assert answer.status_code == 302, answer.text
        return answer.headers["location"]


@contextlib.contextmanager
def redis_server() -> Iterator[str | None]:
    """Start Debian's redis-server on a free loopback port; yield its URL (None when not installed)."""
    binary = shutil.which("redis-server") or ("/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists()
                                              else None)
    if binary is None:
        yield None
        return
    sock = bind()
    port = sock.getsockname()[1]
    sock.close()
    proc = subprocess.Popen([binary, "--port", str(port), "--save", "", "--appendonly", "no", "--bind", "127.0.0.1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)


# -- End to end on the sandbox (test_thick_client_e2e.py) --------------------------------------------

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


class MintedTokens:
    """Every token the mock PSC mints (code, CIBA, refresh, test helpers): a spy on ``TokenIssuer.token_response``.

    All of the mock's grants go through that one method, so nothing it issues escapes this list.
    """

    def __init__(self) -> None:
        self.access: list[str] = []
        self.other: set[str] = set()  # refresh and ID tokens

    @property
    def every(self) -> set[str]:
        return {*self.access, *self.other}

    def install(self, monkeypatch: Any) -> MintedTokens:
        from mssante.sandbox.psc.tokens import TokenIssuer

        original = TokenIssuer.token_response

        def spy(issuer: TokenIssuer, *args: Any, **kwargs: Any) -> Any:
            response = original(issuer, *args, **kwargs)
            self.access.append(response["access_token"])
            self.other.update(response[k] for k in ("refresh_token", "id_token") if response.get(k))
            return response

        monkeypatch.setattr(TokenIssuer, "token_response", spy)
        return self


def sandbox_config_for_bridge(bridge_url: str, *, access_token: float = 2.0, ciba_approve_delay: float = 0.3
                              ) -> SandboxConfig:
    """The default sandbox with short access tokens and the bridge as back-channel logout receiver."""
    base = default_config()
    client = replace(base.clients[0], backchannel_logout_uri=f"{bridge_url}/backchannel-logout")
    lifetimes = replace(base.lifetimes, access_token=access_token, ciba_approve_delay=ciba_approve_delay,
                        ciba_interval=0.5)
    return replace(base, clients=(client,), lifetimes=lifetimes)


@contextlib.asynccontextmanager
async def sandbox_bridge(info: dict[str, Any], sock: socket.socket, tmp: Path, *, cipher: TokenCipher,
                         **changes: Any) -> AsyncIterator[Bridge]:
    """A bridge in front of the sandbox's mock PSC (as ``mssante demo`` runs it), on ``sock``.

    Its SQLite store and audit file are in ``tmp``, so that a test can search them for tokens.
    """
    settings = PSCSettings.from_sandbox(info, leeway=5, ciba_slow_down_step=1, timeout=5)
    config = BridgeConfig(psc=settings, store=f"sqlite:{tmp / 'bridge.sqlite3'}", host="127.0.0.1",
                          port=sock.getsockname()[1], refresh_margin=1.0, heartbeat=1.0, introspect_interval=0,
                          audit_file=tmp / "bridge-audit.jsonl")
    bridge = Bridge(replace(config, **changes), cipher=cipher)
    async with serving(bridge.app, sock, lifespan="on"):
        yield bridge


async def chromium_login(url: str, profile: Path, *, national_id: str = MARIE, until: str) -> tuple[str, str]:
    """Open ``url`` in a real headless Chromium (playwright), pick ``national_id`` on the mock PSC page, log in.

    Waits until the browser is on a URL starting with ``until`` (the bridge's callback) and
    returns that URL and the page's text. The browser profile lives in ``profile`` (so that a
    test can search it for tokens).
    """
    from playwright.async_api import async_playwright, expect

    async with async_playwright() as pw:
        context = await pw.chromium.launch_persistent_context(
            str(profile), executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, locale="fr-FR")
        try:
            page = context.pages[0] if context.pages else await context.new_page()
            page.set_default_timeout(10_000)
            await page.goto(url)
            await expect(page.get_by_role("heading", name="Connexion à Pro Santé Connect")).to_be_visible()
            await page.locator(f"#pro-{national_id}").check()
            await page.get_by_role("button", name="Se connecter").click()
            await page.wait_for_url(lambda u: u.startswith(until))
            await page.wait_for_load_state()
            return page.url, await page.locator("body").inner_text()
        finally:
            await context.close()


def files_containing(roots: list[Path], secrets: set[str]) -> list[str]:
    """Files under ``roots`` holding any of ``secrets`` (raw bytes, so SQLite pages and logs count)."""
    needles = [s.encode() for s in secrets if s]
    found = []
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file() and not path.is_symlink():
                try:
                    data = path.read_bytes()
                except OSError:  # a socket or a file removed meanwhile
                    continue
                found += [str(path) for n in needles if n in data]
    return found
