"""Benchmark: PSC bridge token requests per second and sessions held, against a bare Starlette baseline.

Run: ``.venv/bin/python benchmarks/bench_bridge.py [--seconds 3] [--sessions 200]`` (not a test; loopback only,
bounded: < 60 s). Starts a mock PSC, a bridge with the SQLite store and, when Debian's ``redis-server`` is
installed, one with Redis, each under uvicorn in this process, plus a bare Starlette JSON endpoint as baseline.

* ``token req/s``: ``POST /sessions/{id}/token`` answered from the in-memory cache (installation Basic auth,
  session lookup in the store, secret check, JSON answer), 16 concurrent httpx2 clients over one session each;
* ``baseline req/s``: the same client load on ``GET /`` of a bare Starlette app returning a JSON object;
* ``sessions held``: sessions opened (stored, refresh token encrypted) and SSE streams held open at once,
  with the time it took and the resident memory growth.

Client and servers share one event loop, so the absolute numbers include the client's cost; the ratio
against the baseline, measured in the same run, is the figure to compare.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import ssl
import sys
import tempfile
import time
from pathlib import Path

import httpx2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.bridge._support import CLIENT_ID, MARIE, base_url, bind, redis_server, serving, world

from mssante.bridge import Bridge, RateLimit, TokenCipher
from mssante.psc import TokenSet
from mssante.sandbox.config import Lifetimes

CONCURRENCY = 16
TLS = ssl.create_default_context()  # one context for every client: building one is slow
LONG = Lifetimes(access_token=600, refresh_token=1800, sso_max=3600, sso_idle=1800, ciba_approve_delay=1)


async def _load(url: str, seconds: float, make: object) -> float:
    """Hammer ``url`` from CONCURRENCY clients for ``seconds``; return requests per second."""
    count = 0
    clients = [httpx2.AsyncClient(base_url=url, trust_env=False, verify=TLS) for _ in range(CONCURRENCY)]
    calls = [make(i) for i in range(CONCURRENCY)]  # type: ignore[operator]
    for http, (method, path, kwargs) in zip(clients, calls, strict=True):
        await http.request(method, path, **kwargs)  # warm-up: connection, credential check
    stop = time.perf_counter() + seconds

    async def worker(i: int) -> None:
        nonlocal count
        http, (method, path, kwargs) = clients[i], calls[i]
        while time.perf_counter() < stop:
            response = await http.request(method, path, **kwargs)
            if response.status_code != 200:
                raise SystemExit(f"unexpected {response.status_code}: {response.text[:200]}")
            count += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(CONCURRENCY)))
    rate = count / (time.perf_counter() - start)
    for http in clients:
        await http.aclose()
    return rate


async def _baseline(seconds: float) -> float:
    async def hello(request: Request) -> JSONResponse:
        return JSONResponse({"access_token": "x" * 900, "token_type": "Bearer", "expires_in": 100})

    sock = bind()
    async with serving(Starlette(routes=[Route("/", hello)]), sock):
        return await _load(base_url(sock), seconds, lambda i: ("GET", "/", {}))


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def _bridge(
    store: str | None, seconds: float, sessions: int, tmp: Path, state: Path
) -> tuple[float, float, float]:
    cipher = TokenCipher.generate()
    async with world(tmp, state, lifetimes=LONG) as w:
        unlimited = RateLimit(rate=1e6, burst=1_000_000)
        changes: dict[str, object] = {"per_installation": unlimited, "per_ip": unlimited, "heartbeat": 30.0}
        if store:
            changes["store"] = store
        bridge = Bridge(w.config(0, **changes), cipher=cipher)
        async with serving(bridge.app, w.bridge_socks[0], lifespan="on"):
            secret = await bridge.core.add_installation("bench")
            opened = []
            for _ in range(CONCURRENCY):
                body = w.psc.issue_tokens_for_tests(MARIE, CLIENT_ID)
                opened.append(await bridge.core.open_session("bench", TokenSet.from_response(body, now=time.time())))
            url = w.config(0).base_url

            def make(i: int) -> tuple[str, str, dict[str, object]]:
                sid, ssec = opened[i]
                return "POST", f"/sessions/{sid}/token", {"auth": ("bench", secret),
                                                           "headers": {"X-Session-Secret": ssec.reveal()}}

            rate = await _load(url, seconds, make)
            # Sessions held: open, then hold one SSE stream per session.
            rss0, start = _rss_mb(), time.perf_counter()
            held = []
            for _ in range(sessions):
                body = w.psc.issue_tokens_for_tests(MARIE, CLIENT_ID)
                held.append(await bridge.core.open_session("bench", TokenSet.from_response(body, now=time.time())))
            limits = httpx2.Limits(max_connections=sessions + 10)
            async with httpx2.AsyncClient(base_url=url, trust_env=False, limits=limits,
                                          timeout=httpx2.Timeout(30.0)) as http:
                streams = []
                for sid, ssec in held:
                    ctx = http.stream("GET", f"/sessions/{sid}/events", auth=("bench", secret),
                                      headers={"X-Session-Secret": ssec.reveal()})
                    response = await ctx.__aenter__()
                    lines = response.aiter_lines()
                    assert (await lines.__anext__()).startswith("event: ready")
                    streams.append(ctx)
                elapsed = time.perf_counter() - start
                growth = _rss_mb() - rss0
                for ctx in streams:
                    await ctx.__aexit__(None, None, None)
            return rate, elapsed, growth


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="time per throughput measurement (max 10)")
    parser.add_argument("--sessions", type=int, default=200, help="sessions and SSE streams to hold (max 1000)")
    args = parser.parse_args()
    seconds, sessions = min(max(args.seconds, 0.5), 10.0), min(max(args.sessions, 1), 1000)
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "psc"
        base = await _baseline(seconds)
        print(f"baseline (bare Starlette JSON)   {base:8.0f} req/s")
        runs: list[tuple[str, str | None]] = [("sqlite", None)]
        with redis_server() as redis_url:
            if redis_url is None:
                print("redis-server not installed: Redis run skipped")
            else:
                runs.append(("redis", redis_url))
            for name, store in runs:
                d = Path(tmp) / name
                d.mkdir()
                rate, elapsed, growth = await _bridge(store, seconds, sessions, d, state)
                print(f"bridge/{name:6} token requests    {rate:8.0f} req/s  ratio {rate / base:5.2f} of baseline")
                print(f"bridge/{name:6} sessions held     {sessions:8d}        opened+streaming in {elapsed:5.2f} s, "
                      f"RSS +{growth:.1f} MB")


if __name__ == "__main__":
    asyncio.run(main())
