"""Benchmark: the PSC bridge's token requests against bare Starlette, and sessions held with 0 lapses.

Run: ``.venv/bin/python benchmarks/bench_bridge.py [--rounds 3] [--seconds 3] [--sessions 1000] [--minutes 0.5]``
(not a test; loopback only). Every server runs in a process of its own: the mock PSC, one bridge per store
(SQLite, and Redis when Debian's ``redis-server`` is installed, started with ``serve()``'s own uvicorn settings),
and the baseline, a bare Starlette app under the same uvicorn settings (:func:`uvicorn_config`).

* **token requests/s** (``wrk``, 2 threads, 16 connections): ``POST /sessions/{id}/token`` over 16 sessions opened
  by CIBA, answered from the access-token cache: installation Basic auth, session lookup, secret check, JSON
  answer. The baseline answers the same requests with a JSON object of the same size. Rounds are interleaved
  (baseline, SQLite, Redis, baseline...) and the medians compared. Without ``wrk`` this part is skipped.
* **sessions held**: ``--sessions`` CIBA logins through the bridge's API, one event stream (SSE) each, for
  ``--minutes``, in 4 load processes. The mock PSC's access tokens live 20 s; each client asks for a token
  5 s before its token expires (the bridge, 8 s margin, refreshes it then), so every session is refreshed
  about every 15 s. A **lapse** is a token answer that is not 200, a token with less than 1 s left, a request
  made after the previous token had expired (the load client fell behind), or an event stream that closed or
  announced ``session_ended`` / ``refresh_failed``. Goal: 0.

``report_rows(scale)``: 1,000 sessions for 0.5 minute per store at scale 1; 1,000·scale sessions for ``scale``
minutes above 1 (scale 10: 10,000 sessions for 10 minutes). Rate limits are lifted in the bridges under load
(every request comes from 127.0.0.1); the shipped limits are discussed in the deployment guide.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import random
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
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _rows import Row  # noqa: E402

CONNECTIONS, THREADS, TOKEN_SESSIONS = 16, 2, 16
INSTALLATION = "bench"
ACCESS_LIFE, BRIDGE_MARGIN, CLIENT_MARGIN = 20.0, 8.0, 5.0
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
    asyncio.run(server.serve(sockets=[sock]))


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
        "psc": PSCSettings(issuer=args.issuer, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, leeway=5,
                           timeout=30),
        "store": args.store, "host": "127.0.0.1", "port": args.port, "refresh_margin": BRIDGE_MARGIN,
        "introspect_interval": 0, "per_installation": RateLimit(**UNLIMITED), "per_ip": RateLimit(**UNLIMITED),
        "auth_failures": RateLimit(**UNLIMITED), "redis_pool_size": 100,
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
        await serve(config, cipher)

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
                                  "--access-life", str(access_life)], log)
        children.append(psc)
        urls: dict[str, str] = {}
        for name, store in stores.items():
            argv = ["_bridge", "--store", store, "--port", str(ports[name]), "--issuer", psc.info["issuer"],
                    f"--key={key}", f"--secret={secret}"]  # a secret may start with "-"
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


# -- logins (used by the parent and the load processes) -------------------------------------------------------
async def _login(http: Any, secret: str) -> tuple[str, str]:
    started = await http.post("/logins", json={"method": "ciba", "national_id": "899700000001"},
                              auth=(INSTALLATION, secret))
    if started.status_code != 201:
        raise RuntimeError(f"login refused: {started.status_code} {started.text[:200]}")
    login_id = started.json()["login_id"]
    for _ in range(30):
        answer = await http.get(f"/logins/{login_id}", params={"wait": "20"}, auth=(INSTALLATION, secret))
        if answer.status_code == 200:
            body = answer.json()
            return str(body["session_id"]), str(body["session_secret"])
        if answer.status_code != 202:
            raise RuntimeError(f"login failed: {answer.status_code} {answer.text[:200]}")
    raise RuntimeError("login still pending")


async def _logins(url: str, secret: str, count: int, concurrency: int = 50) -> list[tuple[str, str]]:
    import httpx2

    limit = asyncio.Semaphore(concurrency)
    limits = httpx2.Limits(max_connections=concurrency)
    async with httpx2.AsyncClient(base_url=url, trust_env=False, limits=limits, timeout=60) as http:
        async def one() -> tuple[str, str]:
            async with limit:
                return await _login(http, secret)

        return list(await asyncio.gather(*(one() for _ in range(count))))


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


def measure_tokens(rounds: int = 3, seconds: float = 3.0, src: str | None = None,
                   profile: Path | None = None) -> dict[str, Any] | None:
    """Interleaved wrk rounds on bare Starlette and each bridge; None when wrk is not installed."""
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
            for _ in range(rounds):
                for name in urls:
                    pid, before = env["pids"][name], _cpu_seconds(env["pids"][name])
                    rate = _wrk(urls[name], scripts[name], seconds)
                    rates[name].append(rate)
                    cpu[name].append(round((_cpu_seconds(pid) - before) / (rate * max(1, round(seconds))) * 1e6))
    return {"median": {k: statistics.median(v) for k, v in rates.items()}, "rounds": rates,
            "cpu_us_per_request": {k: statistics.median(v) for k, v in cpu.items()}, "load": os.getloadavg()}


# -- sessions held with their event streams --------------------------------------------------------------------
async def _hold(url: str, secret: str, count: int, seconds: float, life: float) -> dict[str, Any]:
    """Load process: log ``count`` sessions in, hold one event stream each, keep a valid token for each."""
    import httpx2

    t0 = time.monotonic()
    sessions = await _logins(url, secret, count)
    login_seconds = time.monotonic() - t0
    stats = {"sessions": count, "requests": 0, "refreshed": 0, "lapses": 0, "late": 0, "streams": 0,
             "stream_lapses": 0, "login_seconds": round(login_seconds, 1), "errors": []}
    stream_limits = httpx2.Limits(max_connections=count + 10, max_keepalive_connections=count + 10)
    # Idle connections are dropped before uvicorn's 5 s keep-alive timeout closes them under a request.
    token_limits = httpx2.Limits(max_connections=64, keepalive_expiry=2.0)
    stop = asyncio.Event()
    streams_open = asyncio.Semaphore(100)

    def lapse(kind: str, detail: str) -> None:
        stats[kind] += 1
        if len(stats["errors"]) < 10:
            stats["errors"].append(detail)

    async with httpx2.AsyncClient(base_url=url, trust_env=False, limits=stream_limits,
                                  timeout=httpx2.Timeout(30, read=None)) as streams, \
            httpx2.AsyncClient(base_url=url, trust_env=False, limits=token_limits, timeout=30) as tokens:
        ready = asyncio.Event()
        opened = 0

        async def stream(sid: str, ssec: str) -> None:
            nonlocal opened
            async with streams_open:
                ctx = streams.stream("GET", f"/sessions/{sid}/events", auth=(INSTALLATION, secret),
                                     headers={"X-Session-Secret": ssec})
                response = await ctx.__aenter__()
            try:
                if response.status_code != 200:
                    lapse("stream_lapses", f"stream {response.status_code}")
                    return
                lines = response.aiter_lines()
                first = await lines.__anext__()
                if not first.startswith("event: ready"):
                    lapse("stream_lapses", f"stream began with {first!r}")
                    return
                stats["streams"] += 1
                opened += 1
                if opened == count:
                    ready.set()
                async for line in lines:
                    if line.startswith("event:"):
                        lapse("stream_lapses", f"stream event {line!r}")
                        return
                if not stop.is_set():
                    lapse("stream_lapses", "stream closed")
            except (httpx2.HTTPError, StopAsyncIteration) as exc:
                if not stop.is_set():
                    lapse("stream_lapses", f"stream failed: {type(exc).__name__}")
            finally:
                with contextlib.suppress(Exception):
                    await ctx.__aexit__(None, None, None)

        async def keep(sid: str, ssec: str, end: float, delay: float) -> None:
            expires, last = 0.0, ""
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            while not stop.is_set():
                now = time.monotonic()
                if expires and now > expires:
                    lapse("late", f"asked {now - expires:.1f} s after expiry")
                try:
                    answer = await tokens.post(f"/sessions/{sid}/token", auth=(INSTALLATION, secret),
                                               headers={"X-Session-Secret": ssec})
                except httpx2.HTTPError as exc:
                    lapse("lapses", f"token request failed: {type(exc).__name__}")
                    answer = None
                stats["requests"] += 1
                if answer is not None and answer.status_code == 200:
                    body = answer.json()
                    left = float(body["expires_in"])
                    if left < 1:
                        lapse("lapses", f"token with {left} s left")
                    if last and body["access_token"] != last:
                        stats["refreshed"] += 1
                    last = body["access_token"]
                    expires = now + left
                    wake = expires - CLIENT_MARGIN
                elif answer is not None:
                    lapse("lapses", f"token answer {answer.status_code}: {answer.text[:120]}")
                    wake = time.monotonic() + 1
                else:
                    wake = time.monotonic() + 1
                if wake >= end:
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), max(0.0, wake - time.monotonic()))

        watchers = [asyncio.create_task(stream(sid, ssec)) for sid, ssec in sessions]
        try:
            await asyncio.wait_for(ready.wait(), 120 + count / 20)
        except TimeoutError:
            lapse("stream_lapses", f"only {opened} of {count} streams opened")
        # Every load process is ready: the parent says go, so that no login competes with the holding.
        print(json.dumps({"ready": opened}), flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        end = time.monotonic() + seconds
        spread = random.Random(count)  # clients are not synchronised: first requests spread over half a life
        keepers = [asyncio.create_task(keep(sid, ssec, end, spread.uniform(0, life / 2))) for sid, ssec in sessions]
        await asyncio.sleep(max(0.0, end - time.monotonic()))
        stop.set()
        await asyncio.gather(*keepers)
        for task in watchers:
            task.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)
    return stats


def _hold_main(args: argparse.Namespace) -> None:
    _raise_fd_limit()
    print(json.dumps(asyncio.run(_hold(args.url, args.secret, args.count, args.seconds, args.life))), flush=True)


def access_life(sessions: int) -> float:
    """The mock PSC's access-token life: 20 s up to 1,000 sessions, longer above (the mock signs every refresh)."""
    return ACCESS_LIFE * max(1.0, sessions / 1000)


def measure_sessions(sessions: int, minutes: float, src: str | None = None,
                     only: tuple[str, ...] = ("sqlite", "redis")) -> dict[str, dict[str, Any]]:
    """Hold ``sessions`` sessions with their event streams for ``minutes`` on each store; count lapses."""
    results: dict[str, dict[str, Any]] = {}
    life = access_life(sessions)
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
            with _servers(tmp, {name: store}, access_life=life, src=src) as env:
                url, secret = env["urls"][name], env["secret"]
                share = [sessions // WORKERS + (1 if i < sessions % WORKERS else 0) for i in range(WORKERS)]
                t0 = time.monotonic()
                workers = [subprocess.Popen([sys.executable, __file__, "_hold", "--url", url, f"--secret={secret}",
                                             "--count", str(n), "--seconds", str(minutes * 60), "--life", str(life)],
                                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
                           for n in share if n]
                for worker in workers:  # all logged in, every stream open
                    assert worker.stdout is not None and worker.stdin is not None
                    if not worker.stdout.readline():
                        raise SystemExit(f"a load process failed (exit {worker.wait()}); see {env['log']}")
                ready = time.monotonic() - t0
                for worker in workers:
                    assert worker.stdin is not None
                    worker.stdin.write("go\n")
                    worker.stdin.flush()
                total: dict[str, Any] = {"errors": [], "access_life": life, "ready_seconds": round(ready, 1)}
                for worker in workers:
                    out, _ = worker.communicate(timeout=minutes * 60 + 600)
                    if worker.returncode != 0 or not out.strip():
                        raise SystemExit(f"a load process failed (exit {worker.returncode}); see {env['log']}")
                    part = json.loads(out.strip().splitlines()[-1])
                    for key, value in part.items():
                        if key == "errors":
                            total["errors"] += value
                        elif key in ("login_seconds", "access_life", "ready_seconds"):
                            total[key] = max(total.get(key, 0.0), value)
                        else:
                            total[key] = total.get(key, 0) + value
                total["errors"] = total["errors"][:10]
                results[name] = total
    return results


# -- report -------------------------------------------------------------------------------------------------
def _scale(scale: float) -> tuple[int, float]:
    return max(1, int(1000 * scale)), (0.5 * scale if scale <= 1 else float(scale))


def report_rows(scale: float = 1.0) -> list[Row]:
    """Rows ``bridge.tokens.sqlite``, ``bridge.tokens.redis`` (goal >= 0.8 of bare Starlette) and
    ``bridge.sessions.lapses`` (ceiling 0)."""
    rows: list[Row] = []
    tokens = measure_tokens(rounds=3, seconds=3.0)
    if tokens is not None:
        med = tokens["median"]
        for name in ("sqlite", "redis"):
            if name in med:
                rows.append(Row(key=f"bridge.tokens.{name}", what=f"bridge token requests, {name} (wrk, c=16)",
                                figure=round(med[name]), unit="req/s", baseline_name="bare Starlette, same uvicorn",
                                baseline=round(med["bare"]), goal=0.8,
                                extra={"rounds": tokens["rounds"], "load": tokens["load"]}))
    sessions, minutes = _scale(scale)
    held = measure_sessions(sessions, minutes)
    lapses = sum(r.get("lapses", 0) + r.get("late", 0) + r.get("stream_lapses", 0) for r in held.values())
    rows.append(Row(key="bridge.sessions.lapses",
                    what=f"{sessions:,} sessions + SSE held {minutes:g} min ({', '.join(held)}): lapses",
                    figure=lapses, unit="lapses", goal=0, higher_is_better=False, extra=held))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    sub = parser.add_subparsers(dest="child")
    c = sub.add_parser("_psc")
    c.add_argument("--state", required=True)
    c.add_argument("--bridge-url", required=True)
    c.add_argument("--access-life", type=float, default=ACCESS_LIFE)
    c = sub.add_parser("_bridge")
    for name in ("--store", "--issuer", "--key", "--secret"):
        c.add_argument(name, required=True)
    c.add_argument("--port", type=int, required=True)
    c.add_argument("--profile", default=None)
    c = sub.add_parser("_bare")
    c.add_argument("--port", type=int, required=True)
    c = sub.add_parser("_hold")
    c.add_argument("--url", required=True)
    c.add_argument("--secret", required=True)
    c.add_argument("--count", type=int, required=True)
    c.add_argument("--seconds", type=float, required=True)
    c.add_argument("--life", type=float, required=True)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved wrk rounds (medians)")
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds per wrk round")
    parser.add_argument("--sessions", type=int, default=1000, help="sessions held with their event streams")
    parser.add_argument("--minutes", type=float, default=0.5, help="how long they are held, per store")
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
            print(f"load average {tokens['load'][0]:.2f}; medians of {args.rounds} interleaved wrk rounds:")
            for name, rate in med.items():
                print(f"  {name:7} {rate:8.0f} req/s  ratio {rate / med['bare']:.2f}   server CPU "
                      f"{tokens['cpu_us_per_request'][name]:4.0f} us/request   rounds "
                      + " ".join(f"{r:.0f}" for r in tokens["rounds"][name]))
    if args.only in (None, "sessions"):
        held = measure_sessions(args.sessions, args.minutes, src=args.src, only=tuple(args.stores.split(",")))
        for name, result in held.items():
            print(json.dumps({"sessions": name, **result}) if args.json else
                  f"  {name:7} {result['sessions']} sessions, {result['streams']} streams, "
                  f"{result['requests']} token requests, {result['refreshed']} refreshes seen, lapses "
                  f"{result['lapses']} + late {result['late']} + streams {result['stream_lapses']}, logins in "
                  f"{result['login_seconds']} s {result['errors'][:3]}")


if __name__ == "__main__":
    main()
