"""The shared store: Redis, so that several bridge replicas serve the same sessions.

Keys (``<prefix>`` defaults to ``mssante:bridge:``):

=======================  =====================================================================
``inst:<id>``            scrypt hash of an installation secret
``sess:<id>``            session record JSON (refresh/ID tokens as AES-GCM ciphertexts), PX TTL
``psid:<sid>``/``sub:``  sets of session ids, for back-channel logout
``login:<id>``           login record JSON, PX until the login expires; ``state:<state>`` → id
``tok:<id>``             encrypted access token + expiry + version, PX = remaining lifetime
``lock:<id>``            refresh lock: random token, ``SET NX PX``; released by compare-and-delete
``events``               pub/sub channel of session events
=======================  =====================================================================

Writes of a session are compare-and-swap on its version (a Lua script), and the refresh lock
is released only by its holder (Lua compare-and-delete), so a lock that expired under a slow
holder cannot be released by it after another replica took it.

Commands share a bounded pool (``pool_size`` connections); a command that finds every connection
busy waits up to ``pool_timeout`` seconds for one (redis-py's ``BlockingConnectionPool``) rather
than failing at once. The event subscription has its own connection, outside the pool.

Events reach the other replicas by pub/sub. Redis pushes a message to every subscriber before it
answers the ``PUBLISH``, so a replica has it in its socket before the publisher's HTTP answer
leaves; until its event loop has read it (a few microseconds), it may still answer from its
session cache. Requests for a ``fresh`` token always read the store. While the subscription is
down, :meth:`RedisStore.events_current` is false and every request reads Redis; once it is back,
the replicas forget their cached sessions (:data:`~mssante.bridge._records.RESYNC`). A subscription
that hangs without closing (a lost route: TCP says nothing while nobody writes) is found by a PING
after ``health_interval`` seconds of silence: unanswered for as long again, it is no longer trusted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from mssante.bridge._records import RESYNC, EventListener, LoginRecord, SessionRecord
from mssante.errors import AuthUnavailable, ConfigError

__all__ = ["RedisStore"]

log = logging.getLogger("mssante.bridge")

# KEYS[1] session key; ARGV: expected version, new JSON, PX milliseconds.
_SWAP = """
local cur = redis.call('GET', KEYS[1])
if not cur then return 0 end
if tonumber(cjson.decode(cur)['version']) ~= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"""
# KEYS[1] lock key; ARGV[1] holder token.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


class RedisStore:
    """Sessions in Redis; safe for several bridge replicas.

    Attributes:
        shared: always true.
    """

    shared = True

    def __init__(self, url: str, *, prefix: str = "mssante:bridge:", clock: Any = time.time, pool_size: int = 50,
                 pool_timeout: float = 5.0, health_interval: float = 5.0) -> None:
        """Connect lazily to ``url`` (``redis://host:port/db``) with at most ``pool_size`` command connections.

        A command waits up to ``pool_timeout`` seconds for a free connection. The event subscription
        is pinged after ``health_interval`` seconds of silence; a ping unanswered for as long again
        ends the trust in it (the caches are no longer used) and it is opened again.

        Raises:
            ConfigError: the URL is not a Redis URL, or the pool settings are out of range.
        """
        if pool_size < 1 or pool_timeout <= 0 or health_interval <= 0:
            raise ConfigError("the Redis store needs pool_size >= 1, pool_timeout > 0 and health_interval > 0")
        try:
            pool = aioredis.BlockingConnectionPool.from_url(url, decode_responses=True, max_connections=pool_size,
                                                            timeout=pool_timeout)
            self._redis: aioredis.Redis = aioredis.Redis.from_pool(pool)
            self._events: aioredis.Redis = aioredis.Redis.from_url(url, decode_responses=True, max_connections=1,
                                                                   socket_keepalive=True)
        except ValueError as exc:
            raise ConfigError(f"bad Redis URL: {exc}") from exc
        self._live = False
        self._health = health_interval
        self.url = url
        self._p = prefix
        self._clock = clock
        self._listener: EventListener | None = None
        self._task: asyncio.Task[None] | None = None
        self._swap = self._redis.register_script(_SWAP)
        self._release = self._redis.register_script(_RELEASE)
        self._ready = asyncio.Event()

    def __repr__(self) -> str:
        return f"RedisStore(prefix={self._p!r})"

    def _k(self, kind: str, ident: str) -> str:
        return f"{self._p}{kind}:{ident}"

    async def start(self, listener: EventListener) -> None:
        """Check the connection and subscribe to session events.

        Raises:
            ConfigError: Redis cannot be reached.
        """
        self._listener = listener
        try:
            await self._redis.ping()
        except RedisError as exc:
            raise ConfigError(f"cannot reach Redis: {exc}") from exc
        self._ready = asyncio.Event()
        self._task = asyncio.create_task(self._listen(), name="bridge-redis-events")
        await asyncio.wait_for(self._ready.wait(), 10)

    def events_current(self) -> bool:
        """True while the event subscription is established (no event can have been missed)."""
        return self._live

    async def _listen(self) -> None:
        channel = self._p + "events"
        while True:
            try:
                async with self._events.pubsub() as pubsub:
                    await pubsub.subscribe(channel)
                    await self._read_events(pubsub)
            except asyncio.CancelledError:
                self._live = False
                raise
            except (RedisError, OSError, TimeoutError) as exc:  # keep listening across Redis restarts
                self._live = False
                log.warning("bridge event subscription lost (%s); retrying", type(exc).__name__)
                await asyncio.sleep(1.0)

    async def _read_events(self, pubsub: Any) -> None:
        """Deliver the subscription's messages; raise TimeoutError when it stops answering pings.

        A connection that hangs without closing (a dropped route, a frozen Redis) would otherwise
        be trusted for ever: TCP tells nothing while nobody writes. After ``health_interval``
        seconds without a message a PING goes out; with no answer ``health_interval`` seconds
        later the subscription is no longer trusted and is opened again.
        """
        clock = asyncio.get_running_loop().time
        heard = clock()
        pinged = False
        while True:
            message = await pubsub.get_message(timeout=self._health)
            now = clock()
            if message is None:
                if now - heard < self._health:
                    continue
                if pinged and now - heard >= 2 * self._health:
                    raise TimeoutError("the event subscription answers no ping")
                if not pinged:
                    await pubsub.ping()
                    pinged = True
                continue
            heard, pinged = now, False
            kind = message.get("type")
            if kind == "subscribe":  # from now on every event reaches us: caches may be trusted
                if self._listener is not None:
                    self._listener("", RESYNC, {})
                self._live = True
                self._ready.set()
            elif kind == "message":
                self._dispatch(str(message["data"]))

    def _dispatch(self, raw: str) -> None:
        try:
            data = json.loads(raw)
            session_id, event, payload = str(data["session"]), str(data["event"]), dict(data["data"])
        except (ValueError, KeyError, TypeError):
            log.warning("ignored a malformed bridge event")
            return
        if self._listener is not None:
            self._listener(session_id, event, payload)

    async def aclose(self) -> None:
        """Stop listening and close the connection pool."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._events.aclose()
        await self._redis.aclose()

    async def _do(self, coro: Any) -> Any:
        try:
            return await coro
        except RedisError as exc:
            raise AuthUnavailable(f"the bridge store is unreachable ({type(exc).__name__})") from exc

    # -- installations ------------------------------------------------------------------------
    async def add_installation(self, installation_id: str, secret_hash: str) -> None:
        """Register or replace an installation.

        Raises:
            AuthUnavailable: Redis failed.
        """
        await self._do(self._redis.set(self._k("inst", installation_id), secret_hash))

    async def installation_hash(self, installation_id: str) -> str | None:
        """Return the installation's hash or None.

        Raises:
            AuthUnavailable: Redis failed.
        """
        value = await self._do(self._redis.get(self._k("inst", installation_id)))
        return None if value is None else str(value)

    # -- sessions -----------------------------------------------------------------------------
    async def create_session(self, record: SessionRecord, ttl: float) -> None:
        """Store a new session with its indexes.

        Raises:
            AuthUnavailable: Redis failed.
        """
        pipe = self._redis.pipeline(transaction=True)
        pipe.set(self._k("sess", record.session_id), record.to_json(), px=_ms(ttl), nx=True)
        for kind, value in (("psid", record.psc_sid), ("sub", record.subject)):
            if value:
                pipe.sadd(self._k(kind, value), record.session_id)
                pipe.pexpire(self._k(kind, value), _ms(ttl))
        pipe.sadd(self._p + "live", record.session_id)
        await self._do(pipe.execute())

    async def get_session(self, session_id: str) -> SessionRecord | None:
        """Return the session or None.

        Raises:
            AuthUnavailable: Redis failed.
            ContentError: the stored value is corrupt.
        """
        raw = await self._do(self._redis.get(self._k("sess", session_id)))
        return None if raw is None else SessionRecord.from_json(raw)

    async def swap_session(self, record: SessionRecord, ttl: float) -> bool:
        """Compare-and-swap on ``version`` (Lua, atomic in Redis).

        Raises:
            AuthUnavailable: Redis failed.
        """
        key = self._k("sess", record.session_id)
        done = await self._do(self._swap(keys=[key], args=[record.version - 1, record.to_json(), _ms(ttl)]))
        if done and record.ended:
            await self._do(self._redis.srem(self._p + "live", record.session_id))
            await self._do(self._redis.delete(self._k("tok", record.session_id)))
        return bool(done)

    async def find_sessions(self, *, psc_sid: str = "", subject: str = "") -> list[str]:
        """Return session ids indexed under the PSC ``sid`` or the subject.

        Raises:
            AuthUnavailable: Redis failed.
        """
        found: set[str] = set()
        for kind, value in (("psid", psc_sid), ("sub", subject)):
            if value:
                found |= {str(m) for m in await self._do(self._redis.smembers(self._k(kind, value)))}
        return sorted(found)

    async def count_sessions(self) -> int:
        """Return the number of live sessions (approximate: expired ones leave the set lazily).

        Raises:
            AuthUnavailable: Redis failed.
        """
        return int(await self._do(self._redis.scard(self._p + "live")))

    # -- logins -------------------------------------------------------------------------------
    async def put_login(self, record: LoginRecord) -> None:
        """Store a login (and its state index) until it expires.

        Raises:
            AuthUnavailable: Redis failed.
        """
        px = _ms(record.expires_at - self._clock())
        pipe = self._redis.pipeline(transaction=True)
        pipe.set(self._k("login", record.login_id), record.to_json(), px=px)
        if record.state:
            pipe.set(self._k("state", record.state), record.login_id, px=px)
        await self._do(pipe.execute())

    async def get_login(self, login_id: str) -> LoginRecord | None:
        """Return the login or None.

        Raises:
            AuthUnavailable: Redis failed.
            ContentError: the stored value is corrupt.
        """
        raw = await self._do(self._redis.get(self._k("login", login_id)))
        return None if raw is None else LoginRecord.from_json(raw)

    async def login_for_state(self, state: str) -> LoginRecord | None:
        """Return the login with this OAuth state, or None.

        Raises:
            AuthUnavailable: Redis failed.
            ContentError: the stored value is corrupt.
        """
        if not state:
            return None
        login_id = await self._do(self._redis.get(self._k("state", state)))
        return None if login_id is None else await self.get_login(str(login_id))

    async def take_login(self, login_id: str) -> bool:
        """Delete a login; true for the one caller that deleted it.

        Raises:
            AuthUnavailable: Redis failed.
        """
        return bool(await self._do(self._redis.delete(self._k("login", login_id))))

    # -- coordination -------------------------------------------------------------------------
    async def get_cached_token(self, session_id: str) -> tuple[str, float, float, int] | None:
        """Return the shared encrypted access token entry, if any.

        Raises:
            AuthUnavailable: Redis failed.
        """
        raw = await self._do(self._redis.get(self._k("tok", session_id)))
        if raw is None:
            return None
        try:
            data = json.loads(raw)
            return str(data["ct"]), float(data["iat"]), float(data["exp"]), int(data["v"])
        except (ValueError, KeyError, TypeError):
            return None

    async def cache_token(
        self, session_id: str, ciphertext: str, obtained_at: float, expires_at: float, version: int
    ) -> None:
        """Share an encrypted access token until it expires (PX = remaining lifetime).

        Raises:
            AuthUnavailable: Redis failed.
        """
        px = _ms(expires_at - self._clock())
        value = json.dumps({"ct": ciphertext, "iat": obtained_at, "exp": expires_at, "v": version})
        await self._do(self._redis.set(self._k("tok", session_id), value, px=px))

    async def acquire_lock(self, session_id: str, ttl: float) -> str | None:
        """``SET lock NX PX``: return the holder token, or None if another replica holds it.

        Raises:
            AuthUnavailable: Redis failed.
        """
        token = secrets.token_hex(16)
        ok = await self._do(self._redis.set(self._k("lock", session_id), token, nx=True, px=_ms(ttl)))
        return token if ok else None

    async def release_lock(self, session_id: str, token: str) -> None:
        """Compare-and-delete the lock (Lua), so only its holder releases it.

        Raises:
            AuthUnavailable: Redis failed.
        """
        await self._do(self._release(keys=[self._k("lock", session_id)], args=[token]))

    async def publish(self, session_id: str, event: str, data: dict[str, Any]) -> None:
        """Publish a session event to every replica.

        Raises:
            AuthUnavailable: Redis failed.
        """
        message = json.dumps({"session": session_id, "event": event, "data": data})
        await self._do(self._redis.publish(self._p + "events", message))
