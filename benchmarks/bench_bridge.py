"""Benchmark: the PSC bridge's token requests against bare Starlette, and sessions held with 0 lapses.

Run: ``.venv/bin/python benchmarks/bench_bridge.py [--rounds 3] [--seconds 3] [--sessions 200] [--minutes 0.3]``
(not a test; loopback only). Every server runs in a process of its own: the mock PSC, one bridge per store
(SQLite, and Redis when Debian's ``redis-server`` is installed, started with ``serve()``'s own uvicorn settings),
and the baseline, a bare Starlette app under the same uvicorn settings (:func:`uvicorn_config`).

* **token requests/s** (``wrk``, 2 threads, 16 connections): ``POST /sessions/{id}/token`` over 16 sessions opened
  by CIBA, answered from the access-token cache: installation Basic auth, session lookup, secret check, JSON
  answer. The baseline answers the same requests with a JSON object of the same size. Short rounds (1 s) are
  interleaved in cycles of alternating order (baseline, SQLite, Redis, then Redis, SQLite, baseline...); the
  medians of 9 cycles are compared, and beside them the median of the paired ratios (each round over the
  baseline's round of the same cycle) and the servers' CPU per request (bare / bridge: the capacity ratio,
  which the machine's other load hardly moves). Without ``wrk`` this part is skipped.
* **sessions held**: ``--sessions`` CIBA logins through the bridge's API, one event stream (SSE) each, for
  ``--minutes``, from 4 load processes (raw asyncio HTTP/1.1: a socket per stream, nothing more). The mock PSC's
  access tokens live 120 s as PSC's for a 10-minute run (shorter for short runs: 3 lives per run at least); each
  client asks for a token 10 s before its token expires, as ``BridgeTokenSource`` does; the bridge (shipped
  settings: refresh ahead, 20 s margin) refreshes the sessions whose stream it holds between 60 and 85 % of
  their tokens' life. A **lapse** is a token answer that is not 200 or has less than 1 s left, a new token
  issued after the one it replaces had expired (its ``iat`` after the previous ``exp``), a request made after
  the held token had expired (counted apart as ``late``: the load client fell behind, its own event-loop lag is
  printed beside), or an event stream that closed, failed or announced ``session_ended``. A ``refresh_failed``
  event is counted apart, not as a lapse: the session stays (ECO.1.2.7) and the token the client holds is still
  valid; if no refresh follows in time, the next answer is a lapse. Goal: 0. Also reported: the margin of the
  refreshes seen (the replaced token's ``exp`` minus the new one's ``iat``; p1 = 99 % of refreshes came at least
  that early), logins/s and the bridge's CPU per login, the bridge's RSS (idle, all streams open, peak) and CPU
  while the sessions are held, the event-loop lag of the bridge, the mock PSC and the load processes (how late a
  100 ms timer fires), and the load average meanwhile (the machine is shared).

``report_rows(scale)``: 200 sessions for 0.3 minute per store at scale 1 (under a minute); 1,000·scale sessions
for ``scale`` minutes above 1 (scale 10: 10,000 sessions for 10 minutes). Rate limits are lifted in the bridges
under load (every request comes from 127.0.0.1); the shipped limits are discussed in the deployment guide.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import re
import resource
import secrets
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _rows import Row  # noqa: E402

CONNECTIONS, THREADS, TOKEN_SESSIONS = 16, 2, 16
INSTALLATION = "bench"
WORKERS = 4
UNLIMITED = {"rate": 1e6, "burst": 1_000_000}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _raise_fd_limit() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class LoopLag:
    """The lag of this process's event loop: how late a 100 ms timer fires (a busy loop answers late).

    ``write`` appends one JSON line per ``window`` seconds (wall time, p50/p99/max lag in ms) to a file
    the parent reads; ``since(t)`` summarizes the lags recorded after wall time ``t`` in this process.
    """

    TICK = 0.1

    def __init__(self, path: str | None = None, window: float = 10.0) -> None:
        self.path, self.window = path, window
        self.samples: list[tuple[float, float]] = []  # (wall time, lag in ms)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        window: list[float] = []
        flushed = time.time()
        while True:
            start = loop.time()
            await asyncio.sleep(self.TICK)
            lag = max(0.0, (loop.time() - start - self.TICK) * 1000)
            self.samples.append((time.time(), lag))
            if self.path is None:
                continue
            window.append(lag)
            if time.time() - flushed >= self.window:
                _append(self.path, json.dumps({"t": time.time(), **_lag_summary(window)}))
                window, flushed = [], time.time()

    def since(self, t: float) -> dict[str, float | None]:
        return _lag_summary([lag for at, lag in self.samples if at >= t])


def _append(path: str, line: str) -> None:
    with open(path, "a") as out:
        out.write(line + "\n")


def _lag_summary(lags: list[float]) -> dict[str, float | None]:
    ordered = sorted(lags)
    pick = (lambda q: round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)) if ordered else (lambda q: None)
    return {"p50": pick(0.5), "p99": pick(0.99), "max": pick(1.0)}


def _lag_file(path: Path, since: float) -> dict[str, float | None]:
    """Worst window of a :class:`LoopLag` file after wall time ``since``: the highest p99 and max."""
    rows = []
    with contextlib.suppress(OSError):
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    rows = [row for row in rows if row["t"] >= since and row["max"] is not None]
    return {"p50": statistics.median(r["p50"] for r in rows) if rows else None,
            "p99": max((r["p99"] for r in rows), default=None), "max": max((r["max"] for r in rows), default=None)}


# -- child processes ------------------------------------------------------------------------------------------
def _psc_main(args: argparse.Namespace) -> None:
    """Child: the sandbox's mock PSC under uvicorn; prints its issuer."""
    from dataclasses import replace

    import uvicorn
    from tests.bridge._support import REALM, bind, mock_config

    from mssante.sandbox.config import Lifetimes
    from mssante.sandbox.psc import MockPSC

    _raise_fd_limit()
    sock = bind()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    life = Lifetimes(access_token=args.access_life, refresh_token=7200, sso_max=7200, sso_idle=7200,
                     ciba_request=600, ciba_interval=1, ciba_approve_delay=0)
    config = replace(mock_config(args.bridge_url), lifetimes=life)
    psc = MockPSC(config, issuer=url + REALM, state_dir=Path(args.state))
    print(json.dumps({"issuer": psc.issuer}), flush=True)
    server = uvicorn.Server(uvicorn.Config(psc.app, log_level="warning", lifespan="on", access_log=False,
                                           proxy_headers=False, backlog=4096))

    async def main() -> None:
        lag = asyncio.create_task(LoopLag(args.lag).run())
        try:
            await server.serve(sockets=[sock])
        finally:
            lag.cancel()

    asyncio.run(main())


def _bridge_main(args: argparse.Namespace) -> None:
    """Child: ``mssante.bridge.serve`` on ``--store``, with installation ``bench`` registered first."""
    import dataclasses
    import logging

    from tests.bridge._support import CLIENT_ID, CLIENT_SECRET

    from mssante.bridge import BridgeConfig, RateLimit, TokenCipher, open_store, serve
    from mssante.bridge._crypto import hash_installation_secret
    from mssante.psc import PSCSettings

    _raise_fd_limit()
    known = {f.name for f in dataclasses.fields(BridgeConfig)}  # --src may name an older tree
    wanted: dict[str, Any] = {
        "psc": PSCSettings(issuer=args.issuer, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, leeway=5),
        "store": args.store, "host": "127.0.0.1", "port": args.port, "refresh_margin": args.margin,
        "introspect_interval": 0, "per_installation": RateLimit(**UNLIMITED), "per_ip": RateLimit(**UNLIMITED),
        "auth_failures": RateLimit(**UNLIMITED), "redis_pool_size": 100,
        **json.loads(os.environ.get("BENCH_BRIDGE_CONFIG", "{}")),  # experiments: {"refresh_concurrency": 64}
    }
    config = BridgeConfig(**{k: v for k, v in wanted.items() if k in known})
    cipher = TokenCipher.from_text(args.key)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("mssante.bridge.audit").setLevel(logging.WARNING)

    async def main() -> None:
        store: Any = open_store(config)

        def ignore(*_: Any) -> Any:
            return None

        await store.start(ignore)
        await store.add_installation(INSTALLATION, hash_installation_secret(args.secret))
        await store.aclose()
        lag = asyncio.create_task(LoopLag(args.lag).run())
        try:
            await serve(config, cipher)
        finally:
            lag.cancel()

    profile = None
    if args.profile:
        import cProfile

        profile = cProfile.Profile()
        profile.enable()
    try:
        asyncio.run(main())
    finally:
        if profile is not None:
            profile.disable()
            profile.dump_stats(args.profile)


def _bare_main(args: argparse.Namespace) -> None:
    """Child: the baseline, a bare Starlette JSON answer under the bridge's uvicorn settings."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from mssante.bridge import BridgeConfig
    from mssante.bridge._server import uvicorn_config
    from mssante.psc import PSCSettings

    body = {"access_token": "x" * 900, "token_type": "Bearer", "expires_in": 100}

    async def token(request: Request) -> JSONResponse:
        return JSONResponse(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})

    app = Starlette(routes=[Route("/sessions/{session_id}/token", token, methods=["POST"])])
    psc = PSCSettings(issuer="https://127.0.0.1/auth/realms/esante-wallet", client_id="x", client_secret="y")
    server = uvicorn.Server(uvicorn_config(app, BridgeConfig(psc=psc, port=args.port)))
    asyncio.run(server.serve())


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[str]
    info: dict[str, Any]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _spawn(name: str, argv: list[str], log: Path, src: str | None = None, reads_line: bool = True) -> Child:
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    with open(log, "a") as err:  # uvicorn's access log goes to stdout: a pipe nobody reads would block it
        proc = subprocess.Popen([sys.executable, __file__, *argv], stdout=subprocess.PIPE if reads_line else err,
                                stderr=err, text=True, env=env, cwd=ROOT)
    info: dict[str, Any] = {}
    if reads_line:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        line = proc.stdout.readline() if ready else ""
        if not line:
            proc.kill()
            raise SystemExit(f"{name} did not start; see {log}")
        info = json.loads(line)
    return Child(name, proc, info)


def _wait_http(url: str, timeout: float = 60) -> None:
    import httpx2

    deadline = time.monotonic() + timeout
    while True:
        try:
            httpx2.get(url, trust_env=False, timeout=2)
            return
        except httpx2.HTTPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@contextlib.contextmanager
def _redis() -> Iterator[str | None]:
    from tests.bridge._support import redis_server

    with redis_server() as url:
        yield url


@contextlib.contextmanager
def _servers(tmp: Path, stores: dict[str, str], access_life: float, src: str | None = None,
             profile: Path | None = None, bare: bool = False) -> Iterator[dict[str, Any]]:
    """Mock PSC + one bridge per store (+ the bare baseline); yield their URLs and the installation secret."""
    log = tmp / "servers.log"
    ports = {name: _free_port() for name in stores}
    children: list[Child] = []
    secret, key = secrets.token_urlsafe(24), base64.b64encode(secrets.token_bytes(32)).decode()
    try:
        first = f"http://127.0.0.1:{next(iter(ports.values()))}"
        (tmp / "psc").mkdir(exist_ok=True)
        psc = _spawn("mock PSC", ["_psc", "--state", str(tmp / "psc"), "--bridge-url", first,
                                  "--access-life", str(access_life), "--lag", str(tmp / "lag-psc.jsonl")], log)
        children.append(psc)
        urls: dict[str, str] = {}
        for name, store in stores.items():
            argv = ["_bridge", "--store", store, "--port", str(ports[name]), "--issuer", psc.info["issuer"],
                    f"--key={key}", f"--secret={secret}",  # a secret may start with "-"
                    "--margin", str(bridge_margin(access_life)), "--lag", str(tmp / f"lag-{name}.jsonl")]
            if profile is not None:
                argv += ["--profile", str(profile / f"bridge-{name}.prof")]
            children.append(_spawn(f"bridge {name}", argv, log, src=src, reads_line=False))
            urls[name] = f"http://127.0.0.1:{ports[name]}"
        if bare:
            port = _free_port()
            children.append(_spawn("bare", ["_bare", "--port", str(port)], log, reads_line=False))
            urls["bare"] = f"http://127.0.0.1:{port}"
        for name, url in urls.items():
            _wait_http(url + ("/health" if name != "bare" else "/"))
        pids = {child.name.removeprefix("bridge "): child.proc.pid for child in children}
        yield {"urls": urls, "secret": secret, "log": log, "pids": pids}
    finally:
        for child in reversed(children):
            child.stop()
        keep = os.environ.get("BENCH_LOG_DIR")  # the servers' log outlives the run (debugging)
        if keep and log.exists():
            shutil.copy(log, Path(keep) / f"servers-{'-'.join(stores)}-{int(time.time())}.log")


# -- a lean HTTP/1.1 client for the load processes ----------------------------------------------------------
# Raw asyncio streams: 2,500 event streams per load process cost a socket and a small buffer each, and the
# load processes leave the CPU to the servers under measurement (httpx costs several times more per request).
class _Http:
    """HTTP/1.1 to one loopback server: keep-alive connections, at most ``size`` requests at once."""

    def __init__(self, url: str, size: int, auth: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = str(parts.hostname), int(parts.port or 80)
        self.auth = "Basic " + base64.b64encode(auth.encode()).decode()
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []
        self._slots = asyncio.Semaphore(size)
        self.retry_after: dict[int, float] = {}  # task -> Retry-After of its last refusal

    def head(self, method: str, path: str, headers: dict[str, str], body: bytes) -> bytes:
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}", f"Authorization: {self.auth}",
                 *(f"{k}: {v}" for k, v in headers.items())]
        if method != "GET":
            lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    async def request(self, method: str, path: str, headers: dict[str, str] | None = None,
                      body: bytes = b"") -> tuple[int, bytes]:
        """Send one request; return the status and the body (``Content-Length`` answers only)."""
        data = self.head(method, path, headers or {}, body)
        async with self._slots:
            for retry in (False, True):
                conn = self._take()
                fresh = conn is None
                reader, writer = conn if conn is not None else await asyncio.open_connection(self.host, self.port)
                try:
                    writer.write(data)
                    status, fields = await _read_head(reader)
                    answer = await reader.readexactly(int(fields.get("content-length", "0")))
                except (OSError, asyncio.IncompleteReadError, ValueError):
                    writer.close()
                    if fresh or retry:
                        raise
                    continue  # a kept-alive connection the server had just closed: once more on a new one
                if fields.get("connection", "").lower() == "close":
                    writer.close()
                else:
                    self._idle.append((reader, writer, time.monotonic()))
                if status >= 400:  # a busy bridge says when to come back (Retry-After)
                    self.retry_after[id(asyncio.current_task())] = float(fields.get("retry-after", "1") or 1)
                return status, answer
        raise AssertionError("unreachable")

    def _take(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        while self._idle:
            reader, writer, used = self._idle.pop()
            if time.monotonic() - used < 2.0 and not reader.at_eof():  # uvicorn closes idle ones after 5 s
                return reader, writer
            writer.close()
        return None

    def close(self) -> None:
        for _, writer, _ in self._idle:
            writer.close()
        self._idle.clear()


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    fields = {}
    for line in head[1:]:
        name, _, value = line.partition(":")
        fields[name.strip().lower()] = value.strip()
    return int(head[0].split()[1]), fields


async def _login(http: _Http) -> tuple[str, str]:
    status, body = await http.request("POST", "/logins", body=b'{"method":"ciba","national_id":"899700000001"}')
    if status != 201:
        raise RuntimeError(f"login refused: {status} {body[:200]!r}")
    login_id = json.loads(body)["login_id"]
    for _ in range(30):
        status, body = await http.request("GET", f"/logins/{login_id}?wait=20")
        if status == 200:
            answer = json.loads(body)
            return str(answer["session_id"]), str(answer["session_secret"])
        if status != 202:
            raise RuntimeError(f"login failed: {status} {body[:200]!r}")
    raise RuntimeError("login still pending")


async def _logins(url: str, secret: str, count: int, concurrency: int = 50,
                  failures: list[str] | None = None) -> list[tuple[str, str]]:
    """Log ``count`` sessions in; a failed login raises, or with ``failures`` is described there and skipped."""
    http = _Http(url, concurrency, f"{INSTALLATION}:{secret}")
    try:
        done = await asyncio.gather(*(_login(http) for _ in range(count)), return_exceptions=failures is not None)
    finally:
        http.close()
    for outcome in done:
        if isinstance(outcome, BaseException) and failures is not None:
            failures.append(f"{type(outcome).__name__}: {outcome}"[:200])
    return [outcome for outcome in done if not isinstance(outcome, BaseException)]


# -- token requests per second (wrk) ---------------------------------------------------------------------------
def _lua(tmp: Path, secret: str, sessions: list[tuple[str, str]]) -> Path:
    auth = "Basic " + base64.b64encode(f"{INSTALLATION}:{secret}".encode()).decode()
    paths = ", ".join(f'"/sessions/{sid}/token"' for sid, _ in sessions)
    keys = ", ".join(f'"{ssec}"' for _, ssec in sessions)
    script = tmp / f"tokens-{secrets.token_hex(4)}.lua"
    script.write_text(f"""
local paths = {{{paths}}}
local keys = {{{keys}}}
local i = 0
request = function()
  i = (i % #paths) + 1
  return wrk.format("POST", paths[i], {{["Authorization"] = "{auth}", ["X-Session-Secret"] = keys[i],
                                        ["Content-Type"] = "application/json"}}, "{{}}")
end
""")
    return script


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc), 0 elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wrk(url: str, script: Path, seconds: float) -> float:
    command = ["wrk", f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{max(1, round(seconds))}s", "-s", str(script), url]
    out = subprocess.run(command,
                         capture_output=True, text=True, timeout=seconds + 30, check=True).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise SystemExit(f"wrk saw errors against {url}:\n{out}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if match is None:
        raise SystemExit(f"unexpected wrk output:\n{out}")
    rate = float(match.group(1))
    if rate < 100:
        print(f"wrk against {url}:\n{out}", file=sys.stderr)
    return rate


def measure_tokens(rounds: int = 9, seconds: float = 1.0, src: str | None = None,
                   profile: Path | None = None) -> dict[str, Any] | None:
    """Interleaved wrk rounds on bare Starlette and each bridge; None when wrk is not installed.

    Each cycle runs one short round per server, in alternating order (bare, SQLite, Redis, then Redis,
    SQLite, bare), so that a burst of the machine's other load falls on neighbouring rounds of every
    server alike. Returned: the median rate of each server, the median of each bridge's **paired** ratios
    (its round over the bare round of the same cycle), and the server CPU per request (microseconds, from
    ``/proc``), whose ratio (bare / bridge) is the servers' capacity ratio: what the rates would be if each
    had the CPU to itself, a figure that the machine's other load hardly moves.
    """
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install -y wrk): token requests/s skipped", file=sys.stderr)
        return None
    with tempfile.TemporaryDirectory() as tmp_name, _redis() as redis_url:
        tmp = Path(tmp_name)
        stores = {"sqlite": f"sqlite:{tmp / 'bridge.sqlite3'}"}
        if redis_url is not None:
            stores["redis"] = redis_url
        with _servers(tmp, stores, access_life=3600, src=src, profile=profile, bare=True) as env:
            urls, secret = env["urls"], env["secret"]
            scripts = {}
            for name in urls:
                sessions = (asyncio.run(_logins(urls[name], secret, TOKEN_SESSIONS)) if name != "bare"
                            else [(secrets.token_urlsafe(32), secrets.token_urlsafe(32))] * TOKEN_SESSIONS)
                scripts[name] = _lua(tmp, secret, sessions)
                _wrk(urls[name], scripts[name], 1)  # warm-up: connections, credential memo, token caches
            rates: dict[str, list[float]] = {name: [] for name in urls}
            cpu: dict[str, list[float]] = {name: [] for name in urls}  # server CPU microseconds per request
            order = ["bare", *(name for name in urls if name != "bare")]
            for cycle in range(rounds):
                for name in order if cycle % 2 == 0 else order[::-1]:
                    pid, before = env["pids"][name], _cpu_seconds(env["pids"][name])
                    rate = _wrk(urls[name], scripts[name], seconds)
                    rates[name].append(rate)
                    cpu[name].append(round((_cpu_seconds(pid) - before) / (rate * max(1, round(seconds))) * 1e6, 1))
    median_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    paired = {name: statistics.median(r / b for r, b in zip(rates[name], rates["bare"], strict=True))
              for name in rates if name != "bare"}
    return {"median": {k: statistics.median(v) for k, v in rates.items()}, "rounds": rates,
            "paired_ratio": {k: round(v, 3) for k, v in paired.items()},
            "cpu_us_per_request": median_cpu,
            "cpu_ratio": {k: round(median_cpu["bare"] / v, 3) for k, v in median_cpu.items() if k != "bare" and v},
            "load": os.getloadavg()}


# -- sessions held with their event streams --------------------------------------------------------------------
def _claims(token: str) -> dict[str, Any]:
    """The claims of the mock PSC's access token (a JWT: ``iat``, ``exp``, ``jti``), unverified."""
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def client_margin(life: float) -> float:
    """Seconds before expiry a load client asks for its next token: 10 s as ``BridgeTokenSource``, less if short."""
    return min(10.0, life / 8)


def bridge_margin(life: float) -> float:
    """The bridges' ``refresh_margin``: 20 s as shipped, less for short lives (the refresh-ahead window stays open)."""
    return min(20.0, life * 0.15)


async def _hold(url: str, secret: str, count: int, seconds: float, life: float) -> dict[str, Any]:
    """Load process: log ``count`` sessions in, hold one event stream each, keep a valid token for each.

    Each client behaves as ``BridgeTokenSource``: it asks for a token :func:`client_margin` seconds before the one
    it holds expires. Lapses: a token answer that is not 200 or has less than 1 s left, a new token issued by PSC
    after the previous one had expired (``iat`` > previous ``exp``: the refresh came too late), a request made after
    the held token had expired (``late``: the client fell behind), an event stream that closed, failed or announced
    ``session_ended``; ``refresh_failed`` events are counted apart. ``margins``: seconds between each refresh seen
    and the expiry of the token it replaced.
    """
    t0 = time.monotonic()
    failed: list[str] = []
    stats: dict[str, Any] = {"sessions": 0, "login_failures": 0, "requests": 0, "refreshed": 0,
                             "lapses": 0, "late": 0, "streams": 0, "stream_lapses": 0, "pings": 0, "slowest": 0.0,
                             "refresh_failed": 0,
                             "login_seconds": 0.0, "errors": failed, "margins": []}
    http = _Http(url, 32, f"{INSTALLATION}:{secret}")
    logins = _Http(url, 50, f"{INSTALLATION}:{secret}")
    stop = asyncio.Event()
    ready = asyncio.Event()
    opening = asyncio.Semaphore(100)
    pending = count  # clients not yet logged in with their stream open (or failed)
    margin = client_margin(life)

    def lapse(kind: str, detail: str) -> None:
        stats[kind] += 1
        if len(stats["errors"]) < 10:
            stats["errors"].append(detail)

    async def stream(sid: str, ssec: str, started: asyncio.Event) -> None:
        writer = None
        try:
            async with opening:
                reader, writer = await asyncio.open_connection(http.host, http.port)
                writer.write(http.head("GET", f"/sessions/{sid}/events", {"X-Session-Secret": ssec}, b""))
                status, fields = await _read_head(reader)
            if status != 200 or fields.get("transfer-encoding") != "chunked":
                lapse("stream_lapses", f"stream {status} {fields}")
                return
            text = ""
            while True:
                size = int((await reader.readline()).strip() or b"0", 16)
                if size == 0:
                    break
                text += (await reader.readexactly(size + 2))[:-2].decode()
                while "\n\n" in text:
                    event, _, text = text.partition("\n\n")
                    if event.startswith("event: ready"):
                        stats["streams"] += 1
                        started.set()
                    elif event.startswith(":"):
                        stats["pings"] += 1
                    elif event.startswith("event: refresh_failed"):  # the session stays (ECO.1.2.7), the
                        stats["refresh_failed"] += 1  # token held is still valid: a lapse only if it expires
                    else:
                        lapse("stream_lapses", f"stream event {event[:80]!r}")
                        return
            if not stop.is_set():
                lapse("stream_lapses", "stream closed")
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            if not stop.is_set():
                lapse("stream_lapses", f"stream failed: {type(exc).__name__}")
        finally:
            if writer is not None:
                writer.close()

    async def keep(sid: str, ssec: str) -> None:
        expires, jti, held_since = 0.0, "", 0.0
        headers = {"X-Session-Secret": ssec}
        while not stop.is_set():
            now = time.time()
            if expires and now > expires:
                lapse("late", f"asked {now - expires:.1f} s after expiry")
            try:
                async with asyncio.timeout(30):
                    status, body = await http.request("POST", f"/sessions/{sid}/token", headers, b"{}")
            except (OSError, asyncio.IncompleteReadError, ValueError, TimeoutError) as exc:
                lapse("lapses", f"token request failed: {type(exc).__name__}")
                status, body = 0, b""
            stats["requests"] += 1
            stats["slowest"] = max(stats["slowest"], round(time.time() - now, 2))
            wake = time.monotonic() + 1
            if status == 200:
                answer = json.loads(body)
                left = float(answer["expires_in"])
                claims = _claims(answer["access_token"])
                if left < 1:
                    lapse("lapses", f"token with {left} s left")
                if jti and claims["jti"] != jti:
                    stats["refreshed"] += 1
                    stats["margins"].append(expires - claims["iat"])
                    if claims["iat"] > expires:
                        lapse("lapses", f"refreshed {claims['iat'] - expires:.0f} s after expiry (held since "
                                        f"{time.time() - held_since:.0f} s, asked {time.time() - now:.1f} s ago)")
                jti, expires, held_since = claims["jti"], float(claims["exp"]), time.time()
                wake = time.monotonic() + max(1.0, left - margin)
            elif status:
                lapse("lapses", f"token answer {status}: {body[:120]!r}")
                wait = http.retry_after.pop(id(asyncio.current_task()), 1.0)
                wake = time.monotonic() + max(1.0, wait)  # as a workstation honours Retry-After
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, wake - time.monotonic()))

    async def client() -> None:
        """One workstation: logs in, opens its event stream, keeps a valid token until the end."""
        nonlocal pending
        try:
            try:
                async with asyncio.timeout(300):  # a stuck login is a failure, not a hung run
                    sid, ssec = await _login(logins)
            except (OSError, asyncio.IncompleteReadError, ValueError, RuntimeError, TimeoutError) as exc:
                stats["login_failures"] += 1
                if len(failed) < 10:
                    failed.append(f"{type(exc).__name__}: {exc}"[:200])
                return
            stats["sessions"] += 1
            started = asyncio.Event()
            watcher = asyncio.create_task(stream(sid, ssec, started))
            opened = asyncio.ensure_future(started.wait())
            await asyncio.wait({watcher, opened}, timeout=120, return_when=asyncio.FIRST_COMPLETED)
            opened.cancel()
            if not started.is_set() and not watcher.done():
                lapse("stream_lapses", "stream not open after 120 s")
        finally:
            pending -= 1
            if pending == 0:
                stats["login_seconds"] = round(time.monotonic() - t0, 1)
                ready.set()
        if started.is_set():
            await keep(sid, ssec)
        await watcher  # ends with the session (a lapse), or is cancelled at the end

    lag = LoopLag()
    lagging = asyncio.create_task(lag.run())
    clients = [asyncio.create_task(client()) for _ in range(count)]
    await ready.wait()
    logins.close()
    # Every load process is ready: the parent says go, and the measured window begins.
    print(json.dumps({"ready": stats["streams"]}), flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    went = time.time()
    await asyncio.sleep(seconds)
    stop.set()
    for task in asyncio.all_tasks():
        if task.get_coro().__name__ == "stream":  # type: ignore[union-attr]
            task.cancel()
    await asyncio.gather(*clients, return_exceptions=True)
    http.close()
    lagging.cancel()
    stats["client_lag_ms"] = lag.since(went)  # this load process's own loop while the sessions were held
    return stats


def _hold_main(args: argparse.Namespace) -> None:
    _raise_fd_limit()
    print(json.dumps(asyncio.run(_hold(args.url, args.secret, args.count, args.seconds, args.life))), flush=True)


def access_life(minutes: float) -> int:
    """The mock PSC's access-token life: 120 s as PSC's for runs of 10 minutes, shorter for short runs
    (at least 3 lives per run, at least 10 s)."""
    return int(max(10.0, min(120.0, minutes * 60 / 3)))


def _rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return 0.0


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _collect(worker: subprocess.Popen[str], outputs: dict[int, str], timeout: float) -> None:
    outputs[worker.pid] = worker.communicate(timeout=timeout)[0]


def measure_sessions(sessions: int, minutes: float, src: str | None = None,
                     only: tuple[str, ...] = ("sqlite", "redis"),
                     profile: Path | None = None, life: int | None = None) -> dict[str, dict[str, Any]]:
    """Hold ``sessions`` sessions with their event streams for ``minutes`` on each store; count lapses.

    ``life``: the access tokens' life in seconds (default :func:`access_life`).
    """
    results: dict[str, dict[str, Any]] = {}
    life = life or access_life(minutes)
    with tempfile.TemporaryDirectory() as tmp_name, _redis() as redis_url:
        tmp = Path(tmp_name)
        stores = {"sqlite": f"sqlite:{tmp / 'bridge.sqlite3'}"}
        if redis_url is not None:
            stores["redis"] = redis_url
        else:
            print("redis-server is not installed: the Redis run is skipped", file=sys.stderr)
        for name, store in stores.items():
            if name not in only:
                continue
            with _servers(tmp, {name: store}, access_life=life, src=src, profile=profile) as env:
                url, secret, pid = env["urls"][name], env["secret"], env["pids"][name]
                share = [sessions // WORKERS + (1 if i < sessions % WORKERS else 0) for i in range(WORKERS)]
                t0, cpu0, rss0 = time.monotonic(), _cpu_seconds(pid), _rss_mib(pid)
                workers = [subprocess.Popen([sys.executable, __file__, "_hold", "--url", url, f"--secret={secret}",
                                             "--count", str(n), "--seconds", str(minutes * 60), "--life", str(life)],
                                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
                           for n in share if n]
                for worker in workers:  # all logged in, every stream open
                    assert worker.stdout is not None and worker.stdin is not None
                    if not worker.stdout.readline():
                        raise SystemExit(f"a load process failed (exit {worker.wait()}); see {env['log']}")
                ready, cpu1, rss_ready = time.monotonic() - t0, _cpu_seconds(pid), _rss_mib(pid)
                psc_pid, psc_cpu1 = env["pids"]["mock PSC"], _cpu_seconds(env["pids"]["mock PSC"])
                reaped = resource.getrusage(resource.RUSAGE_CHILDREN)  # the load processes, once they have exited
                clients_cpu1 = reaped.ru_utime + reaped.ru_stime + sum(_cpu_seconds(w.pid) for w in workers)
                for worker in workers:
                    assert worker.stdin is not None
                    worker.stdin.write("go\n")
                    worker.stdin.flush()
                t1, went, loads, rss_peak = time.monotonic(), time.time(), [], rss_ready
                # Each load process's last line (its figures, ~100 KB of margins at 10 minutes) is read while it is
                # written: a pipe nobody reads holds 64 KiB, and the process would never exit.
                outputs: dict[int, str] = {}

                readers = [threading.Thread(target=_collect, args=(worker, outputs, minutes * 60 + 600), daemon=True)
                           for worker in workers]
                for reader in readers:
                    reader.start()
                while any(reader.is_alive() for reader in readers):  # sample the load and the RSS
                    readers[0].join(min(30.0, minutes * 60 / 4))
                    for reader in readers:
                        reader.join(0)
                    loads.append(os.getloadavg()[0])
                    rss_peak = max(rss_peak, _rss_mib(pid))
                held_cpu = _cpu_seconds(pid) - cpu1
                psc_cpu = _cpu_seconds(psc_pid) - psc_cpu1
                reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
                clients_cpu = reaped.ru_utime + reaped.ru_stime - clients_cpu1
                total: dict[str, Any] = {"errors": [], "margins": [], "access_life": life,
                                         "ready_seconds": round(ready, 1)}
                for worker in workers:
                    out = outputs.get(worker.pid, "")
                    if worker.returncode != 0 or not out.strip():
                        raise SystemExit(f"a load process failed (exit {worker.returncode}); see {env['log']}")
                    part = json.loads(out.strip().splitlines()[-1])
                    for key, value in part.items():
                        if key in ("errors", "margins"):
                            total[key] += value
                        elif key == "client_lag_ms":  # the worst load process
                            worst = total.setdefault(key, {})
                            for q, ms in value.items():
                                worst[q] = max(worst.get(q) or 0.0, ms or 0.0)
                        elif key in ("login_seconds", "slowest"):
                            total[key] = max(total.get(key, 0.0), value)
                        else:
                            total[key] = total.get(key, 0) + value
                margins = total.pop("margins")
                total.update({
                    "errors": total["errors"][:10],
                    "margin_p1": _percentile(margins, 0.01), "margin_min": min(margins, default=None),
                    "logins_per_s": round(sessions / max(total["login_seconds"], 1e-9), 1),
                    "bridge_cpu_per_login_ms": round((cpu1 - cpu0) / sessions * 1000, 2),
                    "bridge_rss_mib_ready": rss_ready, "bridge_rss_mib_peak": rss_peak,
                    "bridge_rss_mib_idle": rss0,
                    "bridge_rss_kib_per_session": round((rss_peak - rss0) * 1024 / sessions, 1),
                    "bridge_cpu_held_percent": round(held_cpu / max(time.monotonic() - t1, 1e-9) * 100, 1),
                    "psc_cpu_held_percent": round(psc_cpu / max(time.monotonic() - t1, 1e-9) * 100, 1),
                    "load_clients_cpu_held_percent": round(clients_cpu / max(time.monotonic() - t1, 1e-9) * 100, 1),
                    "load_avg_held": round(statistics.median(loads), 2) if loads else None,
                    "bridge_lag_ms": _lag_file(tmp / f"lag-{name}.jsonl", went),
                    "psc_lag_ms": _lag_file(tmp / "lag-psc.jsonl", went),
                })
                results[name] = total
    return results


# -- report -------------------------------------------------------------------------------------------------
def _scale(scale: float) -> tuple[int, float]:
    """Sessions and minutes: 200 for 0.3 min at scale 1 (under a minute for both stores), 10,000 for 10 min at 10."""
    if scale <= 1:
        return max(1, int(200 * scale)), 0.3 * scale
    return int(1000 * scale), float(scale)


def report_rows(scale: float = 1.0) -> list[Row]:
    """Rows ``bridge.tokens.sqlite``, ``bridge.tokens.redis`` (goal >= 0.8 of bare Starlette) and
    ``bridge.sessions.lapses`` (ceiling 0)."""
    rows: list[Row] = []
    tokens = measure_tokens()
    if tokens is not None:
        med = tokens["median"]
        for name in ("sqlite", "redis"):
            if name in med:
                rows.append(Row(key=f"bridge.tokens.{name}", what=f"bridge token requests, {name} (wrk, c=16)",
                                figure=round(med[name]), unit="req/s", baseline_name="bare Starlette, same uvicorn",
                                baseline=round(med["bare"]), goal=0.8,
                                extra={"rounds": tokens["rounds"], "load": tokens["load"],
                                       "paired_ratio": tokens["paired_ratio"][name],
                                       "cpu_ratio": tokens["cpu_ratio"].get(name),
                                       "cpu_us_per_request": tokens["cpu_us_per_request"]}))
    sessions, minutes = _scale(scale)
    held = measure_sessions(sessions, minutes)
    lapses = sum(r["lapses"] + r["late"] + r["stream_lapses"] + r["login_failures"] for r in held.values())
    rows.append(Row(key="bridge.sessions.lapses",
                    what=f"{sessions:,} sessions + SSE held {minutes:g} min ({', '.join(held)}): lapses",
                    figure=lapses, unit="lapses", goal=0, higher_is_better=False, extra=held))
    return rows


def _lags(lag: dict[str, float | None]) -> str:
    return "/".join("-" if lag.get(q) is None else f"{lag[q]:.0f}" for q in ("p50", "p99", "max"))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    sub = parser.add_subparsers(dest="child")
    c = sub.add_parser("_psc")
    c.add_argument("--state", required=True)
    c.add_argument("--bridge-url", required=True)
    c.add_argument("--access-life", type=int, default=120)
    c.add_argument("--lag", default=None)
    c = sub.add_parser("_bridge")
    for name in ("--store", "--issuer", "--key", "--secret"):
        c.add_argument(name, required=True)
    c.add_argument("--port", type=int, required=True)
    c.add_argument("--margin", type=float, default=20.0)
    c.add_argument("--profile", default=None)
    c.add_argument("--lag", default=None)
    c = sub.add_parser("_bare")
    c.add_argument("--port", type=int, required=True)
    c = sub.add_parser("_hold")
    c.add_argument("--url", required=True)
    c.add_argument("--secret", required=True)
    c.add_argument("--count", type=int, required=True)
    c.add_argument("--seconds", type=float, required=True)
    c.add_argument("--life", type=float, required=True)
    parser.add_argument("--rounds", type=int, default=9, help="interleaved wrk cycles (medians)")
    parser.add_argument("--seconds", type=float, default=1.0, help="seconds per wrk round")
    parser.add_argument("--sessions", type=int, default=_scale(1)[0], help="sessions held with their event streams")
    parser.add_argument("--minutes", type=float, default=_scale(1)[1], help="how long they are held, per store")
    parser.add_argument("--access-life", type=int, default=None,
                        help="access tokens' life, seconds (default: 120 s for 6 minutes or more, shorter below)")
    parser.add_argument("--only", choices=("tokens", "sessions"), default=None)
    parser.add_argument("--stores", default="sqlite,redis", help="stores of the sessions run (comma-separated)")
    parser.add_argument("--src", default=None, help="run the bridges from another tree's src/ (to compare commits)")
    parser.add_argument("--profile", type=Path, default=None, help="cProfile each bridge into this directory")
    parser.add_argument("--json", action="store_true", help="one JSON object per result")
    args = parser.parse_args()
    child = {"_psc": _psc_main, "_bridge": _bridge_main, "_bare": _bare_main, "_hold": _hold_main}.get(args.child)
    if child is not None:
        with contextlib.suppress(KeyboardInterrupt):
            child(args)
        return
    if args.only in (None, "tokens"):
        tokens = measure_tokens(args.rounds, args.seconds, src=args.src, profile=args.profile)
        if tokens is not None and args.json:
            print(json.dumps({"tokens": tokens}))
        elif tokens is not None:
            med = tokens["median"]
            print(f"load average {tokens['load'][0]:.2f}; medians of {args.rounds} interleaved wrk cycles:")
            for name, rate in med.items():
                ratios = (f"ratio {rate / med['bare']:.2f} (paired {tokens['paired_ratio'][name]:.2f}, CPU "
                          f"{tokens['cpu_ratio'][name]:.2f})" if name != "bare" else f"{'':34}")
                print(f"  {name:7} {rate:8.0f} req/s  {ratios}   server CPU "
                      f"{tokens['cpu_us_per_request'][name]:4.0f} us/request   rounds "
                      + " ".join(f"{r:.0f}" for r in tokens["rounds"][name]))
    if args.only in (None, "sessions"):
        held = measure_sessions(args.sessions, args.minutes, src=args.src, only=tuple(args.stores.split(",")),
                                profile=args.profile, life=args.access_life)
        for name, result in held.items():
            if args.json:
                print(json.dumps({"store": name, **result}))
                continue
            r = result
            print(f"  {name:7} {r['sessions']} sessions ({r['login_failures']} logins failed), {r['streams']} streams "
                  f"held {args.minutes:g} min "
                  f"(access tokens of {r['access_life']} s): lapses {r['lapses']} + late {r['late']} + streams "
                  f"{r['stream_lapses']}; {r['refreshed']} refreshes seen, margin before expiry p1 "
                  f"{r['margin_p1']} s, min {r['margin_min']} s; {r['refresh_failed']} refresh_failed events; "
                  f"{r['requests']} token requests "
                  f"(slowest {r['slowest']} s), {r['pings']} pings")
            print(f"          logins {r['logins_per_s']}/s ({r['bridge_cpu_per_login_ms']} ms bridge CPU per session "
                  f"while logging in, streams and refreshes included), ready "
                  f"in {r['ready_seconds']} s; bridge RSS {r['bridge_rss_mib_idle']} -> {r['bridge_rss_mib_ready']} "
                  f"-> peak {r['bridge_rss_mib_peak']} MiB ({r['bridge_rss_kib_per_session']} KiB/session), CPU "
                  f"{r['bridge_cpu_held_percent']} % while held (mock PSC {r['psc_cpu_held_percent']} %, load "
                  f"processes {r['load_clients_cpu_held_percent']} %); load {r['load_avg_held']}")
            print(f"          event-loop lag p50/p99/max ms (worst 10-s window): bridge {_lags(r['bridge_lag_ms'])}, "
                  f"mock PSC {_lags(r['psc_lag_ms'])}, load clients {_lags(r['client_lag_ms'])}  {r['errors'][:3]}")


if __name__ == "__main__":
    main()
