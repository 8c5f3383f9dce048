"""The token route's fast path (``Front``) keeps every guarantee of the full app; the stores' cheap freshness checks.

``POST /sessions/{id}/token`` is served before Starlette's router. With a root path (a mounted
bridge) the same request goes through the router: both must answer alike, refusals included.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from mssante.bridge import Bridge, BridgeClient, RateLimit, TokenCipher
from mssante.bridge._records import RESYNC
from mssante.bridge._redis import RedisStore
from mssante.bridge._sqlite import SQLiteStore
from tests.bridge._support import MARIE, running_bridge, world


async def _ask(app: Any, path: str, headers: dict[str, str], body: bytes, *, root_path: str = "",
               chunks: int = 1, method: str = "POST") -> tuple[int, dict[str, str], bytes]:
    """One request straight to the ASGI app (the guard, the fast path and the router are all ours)."""
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    if chunks == 1:
        raw.append((b"content-length", str(len(body)).encode()))
    else:
        raw.append((b"transfer-encoding", b"chunked"))
    scope = {"type": "http", "method": method, "path": path, "raw_path": path.encode(), "root_path": root_path,
             "query_string": b"", "headers": raw, "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 80),
             "scheme": "http", "http_version": "1.1", "asgi": {"version": "3.0"}}
    size = max(1, len(body) // chunks + 1)
    parts = [body[i:i + size] for i in range(0, len(body), size)] or [b""]
    messages = [{"type": "http.request", "body": p, "more_body": i < len(parts) - 1} for i, p in enumerate(parts)]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = sent[0]
    got = {k.decode(): v.decode() for k, v in start["headers"]}
    return start["status"], got, b"".join(m.get("body", b"") for m in sent[1:])


def _basic(secret: str) -> str:
    return "Basic " + base64.b64encode(f"cab-fast:{secret}".encode()).decode()


@contextlib.asynccontextmanager
async def _session(tmp_path: Path, state_dir: Path, cipher: TokenCipher, **changes: Any
                   ) -> AsyncIterator[tuple[Bridge, str, str, str]]:
    async with world(tmp_path, state_dir) as w, running_bridge(w, cipher=cipher, **changes) as bridge:
        secret = await bridge.core.add_installation("cab-fast")
        async with BridgeClient(w.config().base_url, "cab-fast", secret) as client:
            source = await client.login_with_ciba(MARIE)
        yield bridge, secret, source.session_id, source._secret.reveal()


async def test_fast_path_answers_as_the_router(tmp_path: Path, state_dir: Path, cipher: TokenCipher) -> None:
    async with _session(tmp_path, state_dir, cipher) as (bridge, secret, sid, ssec):
        good = {"Authorization": _basic(secret), "X-Session-Secret": ssec,
                "Content-Type": "application/json"}
        cases: list[tuple[str, dict[str, str], bytes, int]] = [
            ("ok", good, b"{}", 1), ("ok, no body", good, b"", 1), ("ok, chunked", good, b'{"fresh": false}', 3),
            ("no credentials", {}, b"{}", 1),
            ("not Basic", {**good, "Authorization": "Bearer x"}, b"{}", 1),
            ("wrong session secret", {**good, "X-Session-Secret": "nope"}, b"{}", 1),
            ("not JSON", good, b"{", 1), ("not an object", good, b"[1]", 1),
            ("nested", good, b"[" * 5000 + b"]" * 5000, 1),
            ("too large", good, b" " * 20_000, 1), ("too large, chunked", good, b" " * 20_000, 4),
            ("multipart", {**good, "Content-Type": "multipart/form-data; boundary=b"}, b"--b--\r\n", 1),
        ]
        for name, headers, body, chunks in cases:
            fast = await _ask(bridge.app, f"/sessions/{sid}/token", headers, body, chunks=chunks)
            routed = await _ask(bridge.app, f"/api/sessions/{sid}/token", headers, body, root_path="/api",
                                chunks=chunks)
            assert fast[0] == routed[0], name
            assert fast[0] < 500, name
            assert {k: v for k, v in fast[1].items() if k != "content-length"} == \
                {k: v for k, v in routed[1].items() if k != "content-length"}, name
            answer, other = json.loads(fast[2]), json.loads(routed[2])
            if fast[0] == 200:
                assert answer["access_token"] == other["access_token"] and answer["token_type"] == "Bearer", name
                assert fast[1]["cache-control"] == "no-store"
            else:
                assert answer == other, name
        assert (await _ask(bridge.app, "/sessions/x/token", {}, b" " * 20_000))[0] == 413


async def test_fast_path_keeps_the_rate_limits_and_the_trusted_proxies(tmp_path: Path, state_dir: Path,
                                                                       cipher: TokenCipher) -> None:
    async with _session(tmp_path, state_dir, cipher, per_ip=RateLimit(rate=0.01, burst=4), proxy_headers=True,
                        trusted_proxies=("127.0.0.1",)) as (bridge, secret, sid, ssec):
        headers = {"Authorization": _basic(secret), "X-Session-Secret": ssec,
                   "X-Forwarded-For": "203.0.113.9"}
        statuses = [(await _ask(bridge.app, f"/sessions/{sid}/token", headers, b""))[0] for _ in range(5)]
        assert statuses == [200, 200, 200, 200, 429]
        other = {**headers, "X-Forwarded-For": "198.51.100.3"}  # another client behind the proxy: its own bucket
        assert (await _ask(bridge.app, f"/sessions/{sid}/token", other, b""))[0] == 200


async def test_event_streams_fast_path_answers_as_the_router(tmp_path: Path, state_dir: Path,
                                                             cipher: TokenCipher) -> None:
    async with _session(tmp_path, state_dir, cipher) as (bridge, secret, sid, ssec):
        good = {"Authorization": _basic(secret), "X-Session-Secret": ssec}
        cases = [("ok", good), ("no credentials", {}), ("wrong session secret", {**good, "X-Session-Secret": "x"}),
                 ("not Basic", {**good, "Authorization": "Bearer x"})]
        for name, headers in cases:  # the client goes away at once: each stream ends
            fast = await _ask(bridge.app, f"/sessions/{sid}/events", headers, b"", method="GET")
            routed = await _ask(bridge.app, f"/api/sessions/{sid}/events", headers, b"", root_path="/api",
                                method="GET")
            assert fast[:2] == routed[:2], name
            if fast[0] != 200:
                assert json.loads(fast[2]) == json.loads(routed[2]), name
        assert fast[0] == 401 and sid not in bridge.core._subscribers
        assert (await _ask(bridge.app, f"/sessions/{sid}/events", good, b" " * 20_000, method="GET"))[0] == 413


async def test_event_stream_over_a_socket_ends_with_the_session_or_the_client(tmp_path: Path, state_dir: Path,
                                                                              cipher: TokenCipher) -> None:
    """Served by Front: ready, then session_ended and the end of the response; a client gone is unsubscribed."""
    async with _session(tmp_path, state_dir, cipher) as (bridge, secret, sid, ssec):
        port = bridge.config.port
        request = (f"GET /sessions/{sid}/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {_basic(secret)}\r\n"
                   f"X-Session-Secret: {ssec}\r\n\r\n").encode()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 200") and b"text/event-stream" in head and b"no-store" in head
        assert b"event: ready" in await asyncio.wait_for(reader.readuntil(b"\n\n"), 10)
        await _close(writer)  # the client goes away: its subscription with it
        await _until(lambda: sid not in bridge.core._subscribers)

        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request)
        assert b"event: ready" in await asyncio.wait_for(reader.readuntil(b"\n\n"), 10)
        await bridge.core.end(sid, "logout")
        rest = await asyncio.wait_for(reader.readuntil(b"0\r\n\r\n"), 10)  # the chunked body's end
        assert b"event: session_ended" in rest and b'"reason":"logout"' in rest
        await _close(writer)
        assert sid not in bridge.core._subscribers


async def test_sqlite_looks_once_per_turn_of_the_event_loop(tmp_path: Path) -> None:
    """A look at the file answers for the rest of its turn (callbacks scheduled before it), never for the next."""
    path = tmp_path / "s.sqlite3"
    seen: list[tuple[str, str]] = []
    store = SQLiteStore(path)
    await store.start(lambda sid, event, data: seen.append((sid, event)))
    other = sqlite3.connect(path, isolation_level=None)
    try:
        assert store.events_current()  # a look
        other.execute("INSERT INTO events (session, event, data, at) VALUES ('s1', 'session_ended', '{}', 0)")
        assert store.events_current() and seen == []  # same turn: whatever runs now was scheduled before the look
        await asyncio.sleep(0)  # the next turn of the loop: anything scheduled from now on came after the look
        assert store.events_current() and seen == [("s1", "session_ended")]
    finally:
        other.close()
        await store.aclose()


async def test_sqlite_reads_a_record_on_the_event_loop_and_sees_the_last_write(tmp_path: Path) -> None:
    """Reads by key skip the thread hand-off (10,000 held sessions: the refreshes' reads cost more in hand-offs
    than in SQLite) and still see every committed write; ``:memory:`` keeps its one connection."""
    from mssante.bridge._records import SessionRecord

    record = SessionRecord(session_id="s1", installation_id="i", secret_digest="d", subject="899700000001",
                           psc_sid="p", refresh_token="r", id_token="t", refresh_expires_at=None, created_at=0.0)
    for path in (tmp_path / "r.sqlite3", ":memory:"):
        store = SQLiteStore(path)
        await store.start(lambda *_: None)
        try:
            await store.create_session(record, 600)
            assert store._db is not None
            writer: list[str] = []
            store._db.set_trace_callback(writer.append)  # statements run on the writer's connection (thread)
            found = await store.get_session("s1")
            assert found == record
            assert (writer == []) is (path != ":memory:"), writer
            assert await store.swap_session(record.bump(refresh_token="r2"), 600)
            again = await store.get_session("s1")
            assert again is not None and again.refresh_token == "r2" and again.version == record.version + 1
            assert await store.get_session("nobody") is None
        finally:
            await store.aclose()


class _Relay:
    """A TCP relay to Redis that can freeze its connections: they stay open and carry nothing.

    Closing waits for every socket it opened or accepted to be closed, including a connection that
    was being set up at that moment: a socket left to the garbage collector warns (ResourceWarning)
    in whichever later test of the worker happens to run the collection.
    """

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.pipes: list[tuple[asyncio.StreamWriter, asyncio.StreamWriter, asyncio.Event]] = []
        self.server: asyncio.Server | None = None
        self.tasks: list[asyncio.Task[None]] = []
        self.handlers: set[asyncio.Task[Any]] = set()
        self.closing = False

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handler = asyncio.current_task()
        assert handler is not None
        self.handlers.add(handler)
        try:
            if self.closing:
                await _close(writer)
                return
            up_reader, up_writer = await asyncio.open_connection(*self.target)
            if self.closing:
                await _close(writer)
                await _close(up_writer)
                return
        finally:
            self.handlers.discard(handler)
        gate = asyncio.Event()
        gate.set()
        self.pipes.append((writer, up_writer, gate))

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await src.read(65536):
                    await gate.wait()
                    dst.write(data)
                    await dst.drain()

        self.tasks += [asyncio.create_task(pump(reader, up_writer)), asyncio.create_task(pump(up_reader, writer))]

    def freeze(self) -> None:
        for _, _, gate in self.pipes:
            gate.clear()

    async def aclose(self) -> None:
        self.closing = True
        if self.server is not None:
            self.server.close()
        for task in [*self.tasks, *self.handlers]:
            task.cancel()
        for task in [*self.tasks, *self.handlers]:
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await task
        for writer, up_writer, gate in self.pipes:
            gate.set()
            await _close(writer)
            await _close(up_writer)
        if self.server is not None:
            await self.server.wait_closed()


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError, ConnectionError):
        await writer.wait_closed()


async def _until(condition: Any) -> None:
    """Wait (10 s at most) for a state of the store that no event announces."""
    async with asyncio.timeout(10):
        while not condition():  # noqa: ASYNC110 - the store has no event for "no longer trusted"
            await asyncio.sleep(0.02)


async def test_a_hung_redis_subscription_stops_being_trusted(redis_url: str) -> None:
    host, port = redis_url.removeprefix("redis://").split("/")[0].split(":")
    relay = _Relay((host, int(port)))
    relay_port = await relay.start()
    store = RedisStore(f"redis://127.0.0.1:{relay_port}/0", health_interval=0.2)
    events: list[str] = []
    await store.start(lambda sid, event, data: events.append(event))
    try:
        assert store.events_current()
        relay.freeze()  # the subscription's connection still stands but carries nothing, as after a lost route
        await _until(lambda: not store.events_current())
        await _until(store.events_current)  # subscribed again on a new connection (the relay passes new ones)
        assert events.count(RESYNC) >= 2  # the caches were dropped on resubscribing
    finally:
        await store.aclose()
        await relay.aclose()
