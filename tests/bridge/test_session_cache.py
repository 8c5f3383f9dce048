"""The in-memory session cache: two bridge instances on one store never serve a session the other ended."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx2

from mssante.bridge import Bridge, BridgeClient, BridgeTokenSource, TokenCipher
from mssante.secret import Secret
from tests.bridge._support import LIFETIMES, MARIE, World, running_bridge, world
from tests.bridge.test_flows import wait_ended

#: Tokens that outlive the test: the refreshes it judges are the ones it asks for (``fresh``), never one
#: that a slow machine let come due between two requests (each would invalidate B's cached record).
LONG_TOKENS = replace(LIFETIMES, access_token=120)


def count_reads(bridge: Bridge) -> list[int]:
    """Count the store reads of sessions made by ``bridge`` (the cache is what saves them)."""
    store: Any = bridge.core.store
    reads = [0]
    original = store.get_session

    async def counted(session_id: str) -> Any:
        reads[0] += 1
        return await original(session_id)

    store.get_session = counted
    return reads


async def _two_instances(w: World, a: Bridge, b: Bridge, *, immediate: bool) -> None:
    """Session opened on A, served from B's cache, then ended and refreshed on A: B never answers stale."""
    secret = await a.core.add_installation("cab-cache")
    urls = [w.config(0).base_url, w.config(1).base_url]
    async with BridgeClient(urls[0], "cab-cache", secret, margin=0.2) as ca, \
            BridgeClient(urls[1], "cab-cache", secret, margin=0.2) as cb, \
            httpx2.AsyncClient(trust_env=False) as http:
        source = await ca.login_with_ciba(MARIE)
        sid, ssec = source.session_id, source._secret.reveal()
        headers = {"X-Session-Secret": ssec}

        async def token(url: str, fresh: bool = False) -> httpx2.Response:
            return await http.post(f"{url}/sessions/{sid}/token", auth=("cab-cache", secret), headers=headers,
                                   json={"fresh": fresh})

        reads = count_reads(b)
        first = await token(urls[1])
        assert first.status_code == 200, first.text
        before = reads[0]
        for _ in range(3):
            assert (await token(urls[1])).status_code == 200
        assert reads[0] == before  # B answers from its cache: no store read

        # Refreshed on A: a client whose token was refused asks B for a fresh one; B must not hand
        # back A's token, which it would do with a stale record (version floor one too low).
        refreshes = a.core.refreshes + b.core.refreshes
        refreshed_on_a = (await token(urls[0], fresh=True)).json()["access_token"]
        from_b = (await token(urls[1], fresh=True)).json()["access_token"]
        assert from_b not in (refreshed_on_a, first.json()["access_token"])
        assert a.core.refreshes + b.core.refreshes == refreshes + 2

        twin = BridgeTokenSource(cb, sid, Secret(ssec), margin=0.2)
        twin.listen()
        await asyncio.wait_for(twin.listening.wait(), 2)
        assert (await token(urls[1])).status_code == 200  # cached again on B
        await source.logout()  # DELETE on A
        if not immediate:  # Redis: B has A's event once its event stream says so
            await wait_ended(twin)
        ended = await token(urls[1])
        assert ended.status_code == 410, ended.text
        assert ended.json()["error"] == "session_ended"
        await wait_ended(twin)  # B's event stream learns it too (SQLite: from the events table)
        assert twin.end_reason == "logout"
        await twin.aclose()


async def test_two_instances_on_one_sqlite_file(tmp_path: Path, state_dir: Path, cipher: TokenCipher) -> None:
    async with world(tmp_path, state_dir, replicas=2, lifetimes=LONG_TOKENS) as w, \
            running_bridge(w, 0, cipher=cipher) as a, running_bridge(w, 1, cipher=cipher) as b:
        await _two_instances(w, a, b, immediate=True)  # each request of B first reads the file's new events


async def test_two_instances_on_one_redis(tmp_path: Path, state_dir: Path, cipher: TokenCipher,
                                          redis_url: str) -> None:
    async with world(tmp_path, state_dir, replicas=2, lifetimes=LONG_TOKENS) as w, \
            running_bridge(w, 0, cipher=cipher, store=redis_url) as a, \
            running_bridge(w, 1, cipher=cipher, store=redis_url) as b:
        await _two_instances(w, a, b, immediate=False)


async def test_redis_waits_for_a_pooled_connection(tmp_path: Path, state_dir: Path, cipher: TokenCipher,
                                                   redis_url: str) -> None:
    """Forty concurrent requests on a pool of two Redis connections: all answered, none 503."""
    async with world(tmp_path, state_dir) as w, \
            running_bridge(w, cipher=cipher, store=redis_url, redis_pool_size=2, session_cache_ttl=0,
                           redis_pool_timeout=120.0) as bridge:
        secret = await bridge.core.add_installation("cab-pool")
        url = w.config().base_url
        async with BridgeClient(url, "cab-pool", secret) as client:
            source = await client.login_with_ciba(MARIE)
        pool: Any = bridge.core.store._redis.connection_pool  # type: ignore[attr-defined]
        assert pool.max_connections == 2
        limits = httpx2.Limits(max_connections=40)
        # Bounds far above any load (what is judged is that every request waits and none is refused).
        async with httpx2.AsyncClient(base_url=url, trust_env=False, limits=limits, timeout=120.0) as http:
            answers = await asyncio.gather(*(
                http.post(f"/sessions/{source.session_id}/token", auth=("cab-pool", secret),
                          headers={"X-Session-Secret": source._secret.reveal()}) for _ in range(40)))
        assert [r.status_code for r in answers] == [200] * 40


async def test_redis_pool_timeout_answers_503_then_recovers(tmp_path: Path, state_dir: Path, cipher: TokenCipher,
                                                              redis_url: str) -> None:
    """Every pooled connection held longer than ``redis_pool_timeout``: 503 ``unavailable`` with Retry-After."""
    async with world(tmp_path, state_dir) as w, \
            running_bridge(w, cipher=cipher, store=redis_url, redis_pool_size=1, redis_pool_timeout=0.3,
                           session_cache_ttl=0) as bridge:
        secret = await bridge.core.add_installation("cab-busy")
        url = w.config().base_url
        async with BridgeClient(url, "cab-busy", secret) as client:
            source = await client.login_with_ciba(MARIE)
        pool: Any = bridge.core.store._redis.connection_pool  # type: ignore[attr-defined]
        held = await pool.get_connection()  # the pool's only connection, busy elsewhere
        async with httpx2.AsyncClient(base_url=url, trust_env=False, timeout=10) as http:
            async def token() -> httpx2.Response:
                return await http.post(f"/sessions/{source.session_id}/token", auth=("cab-busy", secret),
                                       headers={"X-Session-Secret": source._secret.reveal()})

            try:
                busy = await token()
            finally:
                await pool.release(held)
            assert busy.status_code == 503 and busy.json()["error"] == "unavailable"
            assert busy.headers["Retry-After"] == "5"
            assert (await token()).status_code == 200


async def test_heartbeats_read_the_store_only_when_events_may_be_missing(tmp_path: Path, state_dir: Path,
                                                                          cipher: TokenCipher) -> None:
    """10,000 held streams must not read the store at every heartbeat; a resync makes each one look at once."""
    from mssante.bridge._records import RESYNC

    async with world(tmp_path, state_dir) as w, \
            running_bridge(w, cipher=cipher, heartbeat=0.05, session_cache_ttl=0) as bridge:
        secret = await bridge.core.add_installation("cab-beat")
        url = w.config().base_url
        async with BridgeClient(url, "cab-beat", secret) as client:
            source = await client.login_with_ciba(MARIE)
        reads = count_reads(bridge)
        async with httpx2.AsyncClient(base_url=url, trust_env=False, timeout=10) as http, \
                http.stream("GET", f"/sessions/{source.session_id}/events", auth=("cab-beat", secret),
                            headers={"X-Session-Secret": source._secret.reveal()}) as stream:
            lines = stream.aiter_lines()
            assert (await lines.__anext__()).startswith("event: ready")
            start = reads[0]
            pings = 0
            while pings < 40:
                pings += (await asyncio.wait_for(lines.__anext__(), 5)) == ": ping"
            assert 1 <= reads[0] - start <= 3  # the first beat, then one in 32 (one in 8: 5 reads)
            # The session ends in the store without an event (a replica's event lost): a resync reveals it.
            store: Any = bridge.core.store
            record = await store.get_session(source.session_id)
            assert await store.swap_session(record.bump(ended="logout"), 60)
            bridge.core._on_event("", RESYNC, {})
            line = ""
            while not line.startswith("event:"):
                line = await asyncio.wait_for(lines.__anext__(), 5)
            assert line == "event: session_ended"


async def test_event_stream_outlives_a_store_failure(tmp_path: Path, state_dir: Path, cipher: TokenCipher) -> None:
    """The heartbeat's session check meets an unreachable store: the stream stays, no traceback, ends later."""
    from mssante.errors import AuthUnavailable

    async with world(tmp_path, state_dir) as w, running_bridge(w, cipher=cipher, session_cache_ttl=0) as bridge:
        secret = await bridge.core.add_installation("cab-flaky")
        url = w.config().base_url
        async with BridgeClient(url, "cab-flaky", secret) as client:
            source = await client.login_with_ciba(MARIE)
        store: Any = bridge.core.store
        healthy = store.get_session
        failures = [0]

        async def away(session_id: str) -> Any:
            failures[0] += 1
            raise AuthUnavailable("the bridge store is unreachable (test)")

        async with httpx2.AsyncClient(base_url=url, trust_env=False, timeout=10) as http, \
                http.stream("GET", f"/sessions/{source.session_id}/events", auth=("cab-flaky", secret),
                            headers={"X-Session-Secret": source._secret.reveal()}) as stream:
            lines = stream.aiter_lines()
            assert (await lines.__anext__()).startswith("event: ready")
            store.get_session = away
            while (await asyncio.wait_for(lines.__anext__(), 5)) != ": ping":  # a heartbeat despite the store
                pass
            assert failures[0] >= 1
            store.get_session = healthy
            await bridge.core.end(source.session_id, "logout")
            while not (line := await asyncio.wait_for(lines.__anext__(), 5)).startswith("event:"):
                pass
            assert line == "event: session_ended"
