"""The fleet's fast failure detector: a named presence connection per worker, watched by its peers.

A worker process that dies (``kill -9``, a crash, the OOM killer) has its TCP connections closed by
its kernel at once: Redis drops them within milliseconds. Only a dead machine or a network partition
leaves a connection open without a peer, and only then need the others wait for the lease TTL.

So each worker holds one more connection to Redis, its *presence*: named with ``CLIENT SETNAME``
and registered in the ``presence`` hash as ``<client id>|<name>``. Every ``interval`` each worker
asks Redis, with one ``CLIENT LIST ID <ids>``, which of its peers' presence connections still exist.
A peer missing for ``grace`` seconds is declared dead and one Lua script (:data:`_EVICT`), run by
whichever peer sees it first, atomically:

* checks that the peer's registration is the one seen missing (a peer that reconnected meanwhile is
  left alone);
* deletes each of its leases and bumps the BAL's fencing token (``INCR``): a worker that was only cut
  off and comes back can never publish under its old token (the publish script refuses it as stale);
* removes it from the live workers, so the others' share grows at once and they claim its BALs.

The lease TTL stays the safety net (a dead machine, a partition, a Redis that refuses ``CLIENT``).
A worker that finds its own presence connection gone reconnects, registers again and learns whether
it was evicted meanwhile; if so it takes its BALs back (new fencing tokens) where nobody else did.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from typing import Any

import redis.exceptions

from ._model import _s
from ._store import _REDIS_DOWN, FleetStore

__all__ = ["Presence"]

log = logging.getLogger("mssante.fleet.worker")

# KEYS: presence hash. ARGV: worker id, its registration seen before ('' at the first), the new one.
# Returns 1 when the registration seen before is no longer there: this worker was evicted meanwhile.
_REGISTER = """
local was = redis.call('HGET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
if ARGV[2] ~= '' and was ~= ARGV[2] then return 1 end
return 0
"""

# KEYS: presence hash, workers zset, worker hash, held set, then lease and fence of each BAL of the held set (kept
# until its TTL: the others read it to know which free BALs were the dead worker's, FleetStore.held_by).
# ARGV: worker id, the registration seen missing. Returns the leases expired, or -1 when the registration
# changed (the worker reconnected, or another peer evicted it first).
_EVICT = """
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return -1 end
local mine = ARGV[1] .. '|'
local n = 0
for i = 5, #KEYS, 2 do
  local v = redis.call('GET', KEYS[i])
  if v and string.sub(v, 1, #mine) == mine then
    redis.call('DEL', KEYS[i])
    redis.call('INCR', KEYS[i + 1])
    n = n + 1
  end
end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('DEL', KEYS[3])
return n
"""

# KEYS: presence hash. ARGV: worker id, its registration. A clean stop.
_UNREGISTER = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then return redis.call('HDEL', KEYS[1], ARGV[1]) end
return 0
"""

_NAME = re.compile(r"[^A-Za-z0-9._:-]")


class Presence:
    """One worker's presence connection and its watch over the peers' (see the module docstring).

    Args:
        store: the fleet's Redis state (its connection settings are reused for the presence connection).
        worker_id: this worker.
        grace: seconds a peer's presence connection must be missing before the peer is evicted.
    """

    def __init__(self, store: FleetStore, worker_id: str, *, grace: float) -> None:
        self.store = store
        self.worker_id = worker_id
        self.grace = grace
        self.name = "mssante-fleet-" + _NAME.sub("_", worker_id)[:100]
        self.registration = ""  # "<client id>|<name>" as registered, '' before the first
        self.evictions = 0  # peers this worker evicted
        self.evicted = 0  # times this worker found it had been evicted
        self.supported = True  # False: Redis refused CLIENT (an ACL): the lease TTL alone detects failures
        self._conn: Any = None  # the presence connection (redis.asyncio.Connection)
        self._opened: set[Any] = set()  # every connection opened and not yet closed for sure
        self._missing: dict[tuple[str, str], float] = {}  # (peer, registration) -> loop time first seen missing
        self._peers: set[str] = set()
        self._register = store.redis.register_script(_REGISTER)
        self._evict = store.redis.register_script(_EVICT)
        self._unregister = store.redis.register_script(_UNREGISTER)

    async def _client_id(self) -> int:
        """The id Redis gave this worker's presence connection, opened (named) if it is not open.

        A connection of our own, not a pool's: no silent reconnection behind our back, and closed for sure
        (an exception, a cancellation) rather than left to the garbage collector.
        """
        for attempt in (1, 2):  # a connection found closed (CLIENT KILL, a blip) is opened again at once
            conn = self._conn
            if conn is None:
                pool = self.store.redis.connection_pool
                conn = self._conn = pool.connection_class(**{**pool.connection_kwargs, "client_name": self.name})
                self._opened.add(conn)
            try:
                await conn.send_command("CLIENT", "ID")
                return int(await conn.read_response())
            except BaseException as exc:
                self._conn = None
                await asyncio.shield(self._close(conn))
                if attempt == 2 or not isinstance(exc, _REDIS_DOWN):
                    raise
        raise AssertionError("unreachable")

    async def check(self) -> tuple[bool, int]:
        """One round: make sure this worker is present, then evict the peers missing for ``grace`` seconds.

        Returns:
            Whether the leases changed hands (this worker was evicted, a peer was evicted or left), so the
            worker should tick now; and how many leases this round expired.

        Raises:
            redis.exceptions.ConnectionError: Redis is unreachable (the caller retries next round).
        """
        changed = False
        if not self.supported:
            return False, 0
        try:
            client_id = await self._client_id()
        except redis.exceptions.ResponseError:
            return self._unsupported()
        registration = f"{client_id}|{self.name}"
        if registration != self.registration:
            evicted = int(await self._register(keys=[self.store.keys.presence],
                                               args=[self.worker_id, self.registration, registration]))
            if evicted:
                self.evicted += 1
                changed = True
                log.warning("presence lost and leases expired by a peer: taking back what nobody took",
                            extra={"worker": self.worker_id, "event": "evicted"})
            self.registration = registration
        peers = {_s(w): _s(v) for w, v in (await self.store.redis.hgetall(self.store.keys.presence)).items()
                 if _s(w) != self.worker_id}
        if self._peers - peers.keys():
            changed = True  # a peer left (cleanly, or evicted by another): its BALs are free
        self._peers = set(peers)
        if not peers:
            return changed, 0
        ids = [v.partition("|")[0] for v in peers.values()]
        try:
            # only the connections asked for: O(workers), not O(every client of Redis)
            live = {f"{c['id']}|{c.get('name', '')}" for c in await self.store.redis.client_list(client_id=ids)}
        except redis.exceptions.ResponseError:
            return self._unsupported()
        now = asyncio.get_running_loop().time()
        self._missing = {k: t for k, t in self._missing.items() if peers.get(k[0]) == k[1] and k[1] not in live}
        expired = 0
        for peer, seen in peers.items():
            if seen in live:
                continue
            since = self._missing.setdefault((peer, seen), now)
            if now - since < self.grace:
                continue
            count = await self.evict(peer, seen)
            self._missing.pop((peer, seen), None)
            if count >= 0:
                self.evictions += 1
                expired += count
                log.warning("worker gone (presence connection closed): its leases expired",
                            extra={"worker": self.worker_id, "event": "evict", "gone": peer, "count": count})
            changed = True
        return changed, expired

    async def evict(self, peer: str, registration: str) -> int:
        """Expire every lease of ``peer`` (bumping each BAL's fencing token) if ``registration`` is still its own.

        Returns:
            The leases expired, or -1 when the registration changed (the peer reconnected, or was evicted).

        Raises:
            redis.exceptions.ConnectionError: Redis is unreachable.
        """
        keys = self.store.keys
        held = sorted(_s(a) for a in await self.store.redis.smembers(keys.held(peer)))
        bal_keys = [k for a in held for k in (keys.lease(a), keys.fence(a))]
        return int(await self._evict(keys=[keys.presence, keys.workers, keys.worker(peer), keys.held(peer),
                                           *bal_keys], args=[peer, registration]))

    def forget(self) -> None:
        """Forget the peers seen missing (this worker lost Redis: its own view of them is not evidence)."""
        self._missing.clear()

    def _unsupported(self) -> tuple[bool, int]:
        self.supported = False
        log.warning("Redis refuses CLIENT ID / CLIENT LIST: dead workers are detected by the lease TTL only",
                    extra={"worker": self.worker_id, "event": "presence-unsupported"})
        return False, 0

    async def aclose(self, *, unregister: bool) -> None:
        """Close the presence connection; ``unregister`` first (a clean stop: the peers need not evict)."""
        if unregister and self.registration:
            with contextlib.suppress(*_REDIS_DOWN, redis.exceptions.RedisError):
                await self._unregister(keys=[self.store.keys.presence], args=[self.worker_id, self.registration])
        self._conn = None
        for conn in list(self._opened):  # the current one, and any a cancellation left half closed
            await self._close(conn)

    async def _close(self, conn: Any) -> None:
        with contextlib.suppress(Exception):
            await conn.disconnect(nowait=True)
        self._opened.discard(conn)
