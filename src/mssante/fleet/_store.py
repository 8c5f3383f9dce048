"""The fleet's state in Redis: desired BALs, leases with fencing tokens, checkpoints, the event stream.

Every write that matters is one Lua script, so it is atomic (Redis runs scripts alone):

* ``acquire``: ``SET lease NX`` then ``INCR fence``; the lease value is ``worker|fence``.
* ``publish``: refuses a fencing token older than the last one issued for the BAL (a worker that
  lost its lease while paused cannot publish), refuses a UID already published under the same
  UIDVALIDITY (nothing doubled), reports a UIDVALIDITY change (RFC 3501 §2.3.1.1) as an event,
  then ``XADD`` the message event and moves the checkpoint, together.
* ``offer``, ``take``, ``transfer``: the make-before-break handover (a BAL moves to a worker whose IMAP session is
  already up; its previous holder watches it until then).
* ``stop``: the same fencing check, an event (``psc-session-ended``, ECO.1.2.6; ``bal-error``),
  the BAL marked stopped and its lease released.

No secret is ever written: BALs are stored with a credential *reference* (:class:`BALSpec`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
import redis.exceptions

from mssante.errors import TransportError, UsageError

from ._model import BALSpec, FleetEvent, Keys, _s

__all__ = ["Checkpoint", "FleetStore", "Lease", "Published", "redis_errors"]

# KEYS: lease, fence, the worker's held set. ARGV: worker id, ttl ms, address. The held set lists the BALs a
# worker leased (entries may be stale: a lease that lapsed or moved); the failure detector reads it to expire a
# dead worker's leases at once (FleetStore.evict).
_ACQUIRE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local fence = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. fence, 'PX', ARGV[2])
redis.call('SADD', KEYS[3], ARGV[3])
redis.call('PEXPIRE', KEYS[3], 3 * tonumber(ARGV[2]))
return fence
"""

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""

# KEYS: lease, the worker's held set, offers. ARGV: lease value, address. An offer of the lease goes with it.
_RELEASE = """
redis.call('ZREM', KEYS[3], ARGV[2] .. '\\n' .. ARGV[1])
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SREM', KEYS[2], ARGV[2])
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# KEYS: fence, checkpoint, stream. ARGV: fence, uidvalidity, uid, maxlen, lag ms (-1: unknown), then field/value
# pairs (kind, message, bal, <address>, ...).
_PUBLISH = """
local issued = tonumber(redis.call('GET', KEYS[1]) or '0')
local fence = tonumber(ARGV[1])
if fence < issued then return {-1, ''} end
local ck = redis.call('HMGET', KEYS[2], 'uidvalidity', 'uid')
local last = tonumber(ck[2] or '0')
local function xadd(fields)
  local args = {'XADD', KEYS[3]}
  if tonumber(ARGV[4]) > 0 then args[#args + 1] = 'MAXLEN'; args[#args + 1] = '~'; args[#args + 1] = ARGV[4] end
  args[#args + 1] = '*'
  for _, v in ipairs(fields) do args[#args + 1] = v end
  return redis.call(unpack(args))
end
if ck[1] and ck[1] ~= ARGV[2] then
  xadd({'kind', 'uidvalidity-changed', 'bal', ARGV[9], 'previous', ck[1], 'uidvalidity', ARGV[2],
        'previous_uid', ck[2] or '0'})
  last = 0
end
if tonumber(ARGV[3]) <= last then return {0, ''} end
local fields = {}
for i = 6, #ARGV do fields[#fields + 1] = ARGV[i] end
local id = xadd(fields)
local t = redis.call('TIME')
redis.call('HSET', KEYS[2], 'uidvalidity', ARGV[2], 'uid', ARGV[3], 'fence', ARGV[1], 'lag_ms', ARGV[5],
           'at', tostring(tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)))
return {1, id}
"""

# KEYS: fence, lease, stopped hash, stream, the worker's held set, offers. ARGV: fence, lease value, address,
# reason, maxlen, field/value pairs. An offer of the lease is withdrawn.
_STOP = """
local issued = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) < issued then return -1 end
redis.call('ZREM', KEYS[6], ARGV[3] .. '\\n' .. ARGV[2])
local args = {'XADD', KEYS[4]}
if tonumber(ARGV[5]) > 0 then args[#args + 1] = 'MAXLEN'; args[#args + 1] = '~'; args[#args + 1] = ARGV[5] end
args[#args + 1] = '*'
for i = 6, #ARGV do args[#args + 1] = ARGV[i] end
redis.call(unpack(args))
redis.call('HSET', KEYS[3], ARGV[3], ARGV[4])
if redis.call('GET', KEYS[2]) == ARGV[2] then redis.call('DEL', KEYS[2]); redis.call('SREM', KEYS[5], ARGV[3]) end
return 1
"""

# KEYS: workers zset, worker hash, worker's held set. ARGV: worker id, ttl ms, '1' (live) or '0' (draining: out
# of the live set, so the others' share grows and they take its offers), then field/value pairs. Returns live
# workers.
_HEARTBEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if ARGV[3] == '1' then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
else
  redis.call('ZREM', KEYS[1], ARGV[1])
end
if #ARGV > 3 then
  local fields = {}
  for i = 4, #ARGV do fields[#fields + 1] = ARGV[i] end
  redis.call('HSET', KEYS[2], unpack(fields))
end
redis.call('PEXPIRE', KEYS[2], ARGV[2])
redis.call('PEXPIRE', KEYS[3], 3 * tonumber(ARGV[2]))
return redis.call('ZCARD', KEYS[1])
"""

# KEYS: bucket hash. ARGV: rate (per s), burst. Returns 0 (go) or the milliseconds to wait before asking again.
# ARGV: rate, burst, tokens wanted. Returns {tokens granted, ms to wait before asking again (0 if granted)}.
_CONNECT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local rate, burst, want = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local b = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(b[1]) or burst
local at = tonumber(b[2]) or now
tokens = math.min(burst, tokens + (now - at) * rate / 1000)
local granted = math.min(want, math.floor(tokens))
local wait = 0
if granted >= 1 then tokens = tokens - granted else wait = math.ceil((1 - tokens) * 1000 / rate) end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return {granted, wait}
"""

# KEYS: fence, checkpoint, stream. ARGV: fence, previous uidvalidity, new uidvalidity, maxlen, address. Reports a
# UIDVALIDITY change seen at SELECT once (the checkpoint still holds the previous one), restarting the checkpoint.
_UIDVALIDITY = """
local issued = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) < issued then return -1 end
local ck = redis.call('HMGET', KEYS[2], 'uidvalidity', 'uid')
if ck[1] ~= ARGV[2] then return 0 end
local args = {'XADD', KEYS[3]}
if tonumber(ARGV[4]) > 0 then args[#args + 1] = 'MAXLEN'; args[#args + 1] = '~'; args[#args + 1] = ARGV[4] end
args[#args + 1] = '*'
for _, v in ipairs({'kind', 'uidvalidity-changed', 'bal', ARGV[5], 'previous', ck[1], 'uidvalidity', ARGV[3],
                    'previous_uid', ck[2] or '0'}) do args[#args + 1] = v end
redis.call(unpack(args))
redis.call('HSET', KEYS[2], 'uidvalidity', ARGV[3], 'uid', '0', 'fence', ARGV[1])
return 1
"""

# KEYS: the rejected hash, the stream. ARGV: address, digest of the unreadable value, maxlen, field/value pairs.
_REJECT = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local args = {'XADD', KEYS[2]}
if tonumber(ARGV[3]) > 0 then args[#args + 1] = 'MAXLEN'; args[#args + 1] = '~'; args[#args + 1] = ARGV[3] end
args[#args + 1] = '*'
for i = 4, #ARGV do args[#args + 1] = ARGV[i] end
redis.call(unpack(args))
return 1
"""

# Make-before-break handover (docs/fleet.md): a worker above its share *offers* BALs it keeps watching; a worker
# below its share takes an offer, opens the IMAP session, and only then moves the lease (_TRANSFER).
# An offer is the member ``<address>\n<lease value>`` of the offers sorted set, scored by its deadline (Redis time,
# ms): no hash-field expiry in Redis 7.0, and the lease value in the member makes an offer die with the lease it
# was made under (the holder lost it, or took it back with a new fencing token).

# KEYS: offers. ARGV: lifetime ms, then members. Returns the deadline (Redis time, ms).
_OFFER = """
local t = redis.call('TIME')
local deadline = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[1])
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], deadline, ARGV[i]) end
return deadline
"""

# KEYS: offers. Drops the expired offers; returns the live ones.
_LIVE_OFFERS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZRANGE', KEYS[1], 0, -1)
"""

# KEYS: offers. ARGV: taker id, most offers taken, the lease keys' prefix. Drops the expired offers, then pops
# up to N offers of other workers, oldest first, and returns {address, lease value to replace ('' when the lease is
# gone: its holder died or released it), ms left before the offer's deadline} for each. An offer whose lease changed
# hands meanwhile is dropped. The lease keys are derived from the prefix (one Redis, not a cluster: as every key
# of a fleet, docs/fleet.md sizing).
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local want = tonumber(ARGV[2])
local mine = ARGV[1] .. '|'
local out = {}
if want <= 0 then return out end
local offers = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
for i = 1, #offers, 2 do
  local member = offers[i]
  local cut = string.find(member, '\\n', 1, true)
  if cut then
    local address, value = string.sub(member, 1, cut - 1), string.sub(member, cut + 1)
    if string.sub(value, 1, #mine) ~= mine then
      redis.call('ZREM', KEYS[1], member)
      local current = redis.call('GET', ARGV[3] .. address)
      if current == value or not current then
        out[#out + 1] = address
        out[#out + 1] = current and value or ''
        out[#out + 1] = tostring(tonumber(offers[i + 1]) - now)
        if #out >= 3 * want then break end
      end
    end
  end
end
return out
"""

# KEYS: lease, fence, taker's held set, old holder's held set, bals hash, stopped hash. ARGV: the lease value
# to replace ('' when it was gone), taker id, ttl ms, address. Returns {how, fence}: how is 1 (handed over: the
# lease was still the offered one), 2 (acquired: the lease was gone, a normal claim), 0 (someone else holds it)
# or -1 (the BAL was removed or stopped meanwhile).
_TRANSFER = """
if redis.call('HEXISTS', KEYS[5], ARGV[4]) == 0 or redis.call('HEXISTS', KEYS[6], ARGV[4]) == 1 then
  return {-1, 0}
end
local current = redis.call('GET', KEYS[1])
local how = 2
if current then
  if ARGV[1] == '' or current ~= ARGV[1] then return {0, 0} end
  how = 1
  redis.call('SREM', KEYS[4], ARGV[4])
end
local fence = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[2] .. '|' .. fence, 'PX', ARGV[3])
redis.call('SADD', KEYS[3], ARGV[4])
redis.call('PEXPIRE', KEYS[3], 3 * tonumber(ARGV[3]))
if how == 1 then
  -- tell the previous holder at once (its next look, not its next tick): it logs out, then says so
  redis.call('SADD', KEYS[7], ARGV[4] .. '\\n' .. fence)
  redis.call('PEXPIRE', KEYS[7], 3 * tonumber(ARGV[3]))
end
return {how, fence}
"""

# KEYS: a worker's handed-over set. Returns its members and empties it (``<address>\n<fence of the new lease>``).
_TAKE_HANDED = """
local members = redis.call('SMEMBERS', KEYS[1])
if #members > 0 then redis.call('DEL', KEYS[1]) end
return members
"""

_REDIS_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)


@contextlib.contextmanager
def redis_errors() -> Iterator[None]:
    """Turn Redis being unreachable into :class:`~mssante.errors.TransportError`.

    Raises:
        TransportError: Redis could not be reached or timed out.
    """
    try:
        yield
    except _REDIS_DOWN as exc:
        raise TransportError(f"Redis is unreachable: {exc}") from None


@dataclass(frozen=True)
class Lease:
    """A held lease: the BAL, the value stored in Redis (``worker|fence``) and the fencing token."""

    address: str
    value: str
    fence: int

    @property
    def worker(self) -> str:
        """The worker holding it (the value's part before ``|``)."""
        return self.value.rpartition("|")[0]


@dataclass(frozen=True)
class Checkpoint:
    """The highest UID published for a BAL under a UIDVALIDITY."""

    uidvalidity: int
    uid: int


@dataclass(frozen=True)
class Published:
    """The outcome of :meth:`FleetStore.publish`: ``status`` is ``published``, ``duplicate`` or ``stale``."""

    status: str
    entry_id: str | None = None


class FleetStore:
    """The fleet's Redis state, shared by workers, the CLI and the LPS's readers.

    Args:
        client: a ``redis.asyncio.Redis`` client.
        keys: the key names (a prefix per fleet).
        stream_maxlen: approximate cap of the event stream (0: never trimmed; the LPS trims
            after XACK, or sizes Redis for it).
    """

    def __init__(self, client: aioredis.Redis, *, keys: Keys | None = None, stream_maxlen: int = 0) -> None:
        self.redis: Any = client
        self.keys = keys or Keys()
        self.stream_maxlen = stream_maxlen
        self._acquire = client.register_script(_ACQUIRE)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)
        self._reject = client.register_script(_REJECT)
        self._uidvalidity = client.register_script(_UIDVALIDITY)
        self._publish = client.register_script(_PUBLISH)
        self._stop = client.register_script(_STOP)
        self._heartbeat = client.register_script(_HEARTBEAT)
        self._connect = client.register_script(_CONNECT)
        self._parsed: dict[tuple[Any, Any], BALSpec | UsageError] = {}
        self.unreadable: dict[str, tuple[str, str]] = {}  # address -> (digest of the value, why), at the last bals()
        self._desired: dict[str, BALSpec] | None = None  # the last set read, its version and when (loop time)
        self._desired_version: Any = None
        self._desired_at = 0.0
        self._offer = client.register_script(_OFFER)
        self._live_offers = client.register_script(_LIVE_OFFERS)
        self._take = client.register_script(_TAKE)
        self._transfer = client.register_script(_TRANSFER)
        self._take_handed = client.register_script(_TAKE_HANDED)

    @classmethod
    def from_url(cls, url: str, *, max_connections: int = 32, **kwargs: Any) -> FleetStore:
        """A store on a new client for ``url`` (``redis://host:port/db``).

        At most ``max_connections`` connections to Redis: a worker's BALs wait their turn for one
        instead of each opening its own (a connection and its buffers per BAL, at start).

        Raises:
            ValueError: a malformed URL.
        """
        pool = aioredis.BlockingConnectionPool.from_url(url, decode_responses=True, socket_connect_timeout=5,
                                                        socket_timeout=10, max_connections=max_connections,
                                                        timeout=None)
        return cls(aioredis.Redis.from_pool(pool), **kwargs)

    async def aclose(self) -> None:
        """Close the Redis client."""
        with contextlib.suppress(*_REDIS_DOWN):
            await self.redis.aclose()

    # -- the desired set ------------------------------------------------------------------------
    async def add(self, spec: BALSpec) -> None:
        """Watch ``spec`` (replaces its previous description; clears a stopped mark).

        Raises:
            TransportError: Redis is unreachable.
        """
        with redis_errors():
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hset(self.keys.bals, spec.address, spec.to_json())
                pipe.hdel(self.keys.stopped, spec.address)
                pipe.hdel(self.keys.rejected, spec.address)
                pipe.incr(self.keys.bals_version)
                await pipe.execute()

    async def remove(self, address: str) -> bool:
        """Stop watching ``address``; its worker notices at its next tick. Returns whether it was watched.

        Raises:
            TransportError: Redis is unreachable.
        """
        with redis_errors():
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hdel(self.keys.bals, address)
                pipe.hdel(self.keys.stopped, address)
                pipe.incr(self.keys.bals_version)
                removed, _, _ = await pipe.execute()
        return bool(removed)

    async def bals(self, *, max_age: float | None = None) -> dict[str, BALSpec]:
        """Every readable BAL of the desired set, by address (the caller must not change the dict).

        An entry that is not a BAL description (written by hand, by another program, by an older version) is left
        out and kept in :attr:`unreadable` with why: one bad entry must not stop the fleet's other BALs (a
        worker reports it once, :meth:`report_unreadable`).

        Args:
            max_age: with a value, the set read last is returned again while the desired set's version key
                (``Keys.bals_version``, moved by :meth:`add` and :meth:`remove`) has not changed and it is
                younger than ``max_age`` seconds: a worker ticking three times a second does not read 100,000
                entries each time, one ``GET`` instead. A program writing the hash itself bumps the version in
                the same transaction, or its change is seen within ``max_age``.

        Raises:
            TransportError: Redis is unreachable.
        """
        now = asyncio.get_running_loop().time()
        with redis_errors():
            if max_age is not None and self._desired is not None:
                version = await self.redis.get(self.keys.bals_version)
                if version == self._desired_version and now - self._desired_at < max_age:
                    return self._desired
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.get(self.keys.bals_version)
                pipe.hgetall(self.keys.bals)
                self._desired_version, raw = await pipe.execute()
        self._desired_at = now
        known = self._parsed  # a worker reads the whole set every tick: parse only what changed
        parsed: dict[tuple[Any, Any], BALSpec | UsageError] = {}
        for address, value in raw.items():
            spec = known.get((address, value))
            if spec is None:
                try:
                    spec = BALSpec.from_json(_s(address), value)
                except UsageError as exc:
                    spec = exc
            parsed[(address, value)] = spec
        self._parsed = parsed
        self.unreadable = {_s(a): (hashlib.sha256(_s(v).encode()).hexdigest()[:16], str(spec))
                           for (a, v), spec in parsed.items() if isinstance(spec, UsageError)}
        self._desired = {_s(a): spec for (a, _), spec in parsed.items() if isinstance(spec, BALSpec)}
        return self._desired

    async def uidvalidity_changed(self, lease: Lease, previous: int, new: int) -> bool:
        """Report that the BAL's folder has a new UIDVALIDITY (seen at SELECT): one ``uidvalidity-changed`` event,
        the checkpoint restarted at UID 0 under ``new``; nothing when the checkpoint is not at ``previous`` any more
        (already reported) or the fencing token is stale.

        Returns:
            True when this call reported it.

        Raises:
            redis.exceptions.ConnectionError: Redis is unreachable.
        """
        done = await self._uidvalidity(keys=[self.keys.fence(lease.address), self.keys.checkpoint(lease.address),
                                             self.keys.events],
                                       args=[lease.fence, previous, new, self.stream_maxlen, lease.address])
        return int(done) == 1

    async def report_unreadable(self, address: str, digest: str, reason: str) -> bool:
        """Emit a ``bal-error`` event for an unreadable desired-set entry, once per value (``digest``) across the
        fleet; :meth:`add` of a good description clears it.

        Returns:
            True when this call emitted the event (False: already reported).

        Raises:
            redis.exceptions.ConnectionError: Redis is unreachable.
        """
        flat = ["kind", "bal-error", "bal", address, "reason", reason]
        return int(await self._reject(keys=[self.keys.rejected, self.keys.events],
                                      args=[address, digest, self.stream_maxlen, *flat])) == 1

    async def stopped(self) -> dict[str, str]:
        """BALs whose watch stopped (PSC session ended, bad reference) → why; add them again to resume.

        Raises:
            TransportError: Redis is unreachable.
        """
        with redis_errors():
            raw = await self.redis.hgetall(self.keys.stopped)
        return {_s(a): _s(v) for a, v in raw.items()}

    # -- leases ---------------------------------------------------------------------------------
    async def acquire(self, address: str, worker_id: str, ttl_ms: int) -> Lease | None:
        """Take the lease of ``address`` if nobody holds it, with a new fencing token.

        Raises:
            redis.exceptions.ConnectionError: Redis is unreachable (the worker retries).
        """
        fence = int(await self._acquire(keys=[self.keys.lease(address), self.keys.fence(address),
                                              self.keys.held(worker_id)], args=[worker_id, ttl_ms, address]))
        return Lease(address, f"{worker_id}|{fence}", fence) if fence else None

    async def acquire_many(self, addresses: list[str], worker_id: str, ttl_ms: int) -> list[Lease | None]:
        """:meth:`acquire` for several BALs in one round trip (each still atomic on its own).

        Raises:
            redis.exceptions.ConnectionError: Redis is unreachable (the worker retries).
        """
        async with self.redis.pipeline(transaction=False) as pipe:
            for address in addresses:
                await self._acquire(keys=[self.keys.lease(address), self.keys.fence(address),
                                          self.keys.held(worker_id)], args=[worker_id, ttl_ms, address], client=pipe)
            fences = await pipe.execute()
        return [Lease(a, f"{worker_id}|{int(f)}", int(f)) if int(f) else None
                for a, f in zip(addresses, fences, strict=True)]

    async def unleased(self, addresses: list[str]) -> list[str]:
        """The BALs of ``addresses`` nobody holds a lease on (one MGET).

        Raises:
            redis.exceptions.ConnectionError: Redis is unreachable.
        """
        if not addresses:
            return []
        values = await self.redis.mget([self.keys.lease(a) for a in addresses])
        return [a for a, v in zip(addresses, values, strict=True) if v is None]

    async def renew(self, leases: list[Lease], ttl_ms: int) -> list[bool]:
        """Extend each lease still held (one round trip); False for a lease that was lost.

        Raises:
            redis.exceptions.ConnectionError: Redis is unreachable.
        """
        async with self.redis.pipeline(transaction=False) as pipe:
            for lease in leases:
                await self._renew(keys=[self.keys.lease(lease.address)], args=[lease.value, ttl_ms], client=pipe)
            results = await pipe.execute()
        return [bool(r) for r in results]

    async def release(self, lease: Lease) -> bool:
        """Give the lease back (only if still ours).

        Raises:
            redis.exceptions.ConnectionError: Redis is unreachable.
        """
        return bool(await self._release(keys=[self.keys.lease(lease.address), self.keys.held(lease.worker),
                                              self.keys.offers], args=[lease.value, lease.address]))

    async def release_many(self, leases: list[Lease]) -> list[bool]:
        """:meth:`release` for several leases in one round trip.

        Raises:
            redis.exceptions.ConnectionError: Redis is unreachable.
        """
        async with self.redis.pipeline(transaction=False) as pipe:
            for lease in leases:
                await self._release(keys=[self.keys.lease(lease.address), self.keys.held(lease.worker),
                                          self.keys.offers], args=[lease.value, lease.address], client=pipe)
            results = await pipe.execute()
        return [bool(r) for r in results]

    async def holder(self, address: str) -> str | None:
        """Who holds the lease of ``address`` (``worker|fence``), if anyone.

        Raises:
            TransportError: Redis is unreachable.
        """
        with redis_errors():
            value = await self.redis.get(self.keys.lease(address))
        return _s(value) if value else None

    async def holders(self, addresses: list[str]) -> list[str | None]:
        """Who holds the lease of each of ``addresses`` (``worker|fence``, None: nobody), in one MGET.

        Raises:
            redis.exceptions.ConnectionError: Redis is unreachable.
        """
        if not addresses:
            return []
        return [_s(v) if v else None for v in await self.redis.mget([self.keys.lease(a) for a in addresses])]

    # -- checkpoints and events -----------------------------------------------------------------
    async def checkpoint(self, address: str) -> Checkpoint | None:
        """The highest UID published for ``address``, with its UIDVALIDITY.

        Raises:
            redis.exceptions.ConnectionError: Redis is unreachable.
        """
        raw = await self.redis.hmget(self.keys.checkpoint(address), ["uidvalidity", "uid"])
        if raw[0] is None:
            return None
        return Checkpoint(int(raw[0]), int(raw[1] or 0))

    async def checkpoints(self, addresses: list[str]) -> dict[str, Checkpoint | None]:
        """:meth:`checkpoint` of each address, in one round trip (the BALs a worker claims in one tick).

        Raises:
            redis.exceptions.ConnectionError: Redis is unreachable.
        """
        async with self.redis.pipeline(transaction=False) as pipe:
            for address in addresses:
                pipe.hmget(self.keys.checkpoint(address), ["uidvalidity", "uid"])
            raw = await pipe.execute()
        return {a: None if r[0] is None else Checkpoint(int(r[0]), int(r[1] or 0))
                for a, r in zip(addresses, raw, strict=True)}

    async def lags(self, addresses: list[str]) -> dict[str, tuple[int, int] | None]:
        """Per BAL, the lag of its last published message (ms, -1 when unknown) and when it was
        published (Redis time, ms); None for a BAL with nothing published yet. One round trip.

        Raises:
            TransportError: Redis is unreachable.
        """
        with redis_errors():
            async with self.redis.pipeline(transaction=False) as pipe:
                for address in addresses:
                    pipe.hmget(self.keys.checkpoint(address), ["lag_ms", "at"])
                rows = await pipe.execute()
        return {a: (int(lag), int(at)) if lag is not None and at is not None else None
                for a, (lag, at) in zip(addresses, rows, strict=True)}

    async def publish(self, lease: Lease, uidvalidity: int, uid: int, fields: dict[str, str], *,
                      lag_ms: int | None = None) -> Published:
        """Publish a message event and move the checkpoint, atomically; see the module docstring.

        ``fields`` must hold ``bal`` as its second pair (after ``kind``), as :func:`message_fields` builds it.
        ``lag_ms`` (from the message's arrival to now) is kept in the checkpoint, with the time of
        publication, for :meth:`lags`.

        Raises:
            redis.exceptions.ConnectionError: Redis is unreachable (nothing was published).
        """
        flat: list[str] = [x for pair in fields.items() for x in pair]
        args: list[str | int] = [lease.fence, uidvalidity, uid, self.stream_maxlen,
                                 -1 if lag_ms is None else lag_ms, *flat]
        status, entry = await self._publish(
            keys=[self.keys.fence(lease.address), self.keys.checkpoint(lease.address), self.keys.events], args=args)
        name = {1: "published", 0: "duplicate", -1: "stale"}[int(status)]
        return Published(name, _s(entry) or None)

    async def stop(self, lease: Lease, kind: str, reason: str, extra: dict[str, str] | None = None) -> bool:
        """Emit ``kind`` (``psc-session-ended``, ``bal-error``) for the BAL, mark it stopped, release its lease.

        Returns False when the fencing token is stale (another worker owns the BAL now).

        Raises:
            redis.exceptions.ConnectionError: Redis is unreachable.
        """
        fields = {"kind": kind, "bal": lease.address, "reason": reason, **(extra or {})}
        flat = [x for pair in fields.items() for x in pair]
        keys = [self.keys.fence(lease.address), self.keys.lease(lease.address), self.keys.stopped, self.keys.events,
                self.keys.held(lease.worker), self.keys.offers]
        done = await self._stop(keys=keys, args=[lease.fence, lease.value, lease.address, f"{kind}: {reason}",
                                                 self.stream_maxlen, *flat])
        return int(done) == 1

    async def take_connect(self, operator: str, rate: float, burst: int) -> float:
        """Take a connection token from the fleet-wide bucket of ``operator`` (shared by every worker).

        Returns:
            0 when the connection may be opened now, else the seconds to wait before asking again.

        Raises:
            redis.exceptions.ConnectionError: Redis is unreachable.
        """
        granted, wait = await self.take_connects(operator, rate, burst, 1)
        return 0.0 if granted else wait

    async def take_connects(self, operator: str, rate: float, burst: int, want: int) -> tuple[int, float]:
        """Take up to ``want`` tokens at once from the fleet-wide bucket of ``operator``: one round trip for a
        worker's queue of BALs waiting to connect, not one per BAL.

        Returns:
            The tokens granted (at least 1 unless the bucket is empty), and the seconds to wait before asking
            again when none was.

        Raises:
            redis.exceptions.ConnectionError: Redis is unreachable.
        """
        granted, wait = await self._connect(keys=[self.keys.operator(operator)], args=[rate, burst, max(1, want)])
        return int(granted), int(wait) / 1000

    async def heartbeat(self, worker_id: str, ttl_ms: int, figures: dict[str, str | int], *, live: bool = True
                        ) -> int:
        """Say this worker is alive for ``ttl_ms`` and store its figures; returns how many workers are alive.

        ``live=False`` (a worker draining before it stops) takes it out of the live workers, so the others' share
        grows and they take its offers, while its figures and held set are kept up to date.

        Raises:
            redis.exceptions.ConnectionError: Redis is unreachable.
        """
        flat = [str(x) for pair in figures.items() for x in pair]
        return int(await self._heartbeat(keys=[self.keys.workers, self.keys.worker(worker_id),
                                               self.keys.held(worker_id)],
                                         args=[worker_id, ttl_ms, "1" if live else "0", *flat]))

    # -- make-before-break handover -------------------------------------------------------------
    async def offer(self, leases: list[Lease], lifetime_ms: int) -> int:
        """Offer these BALs (held by the caller, who keeps watching them) to a worker below its share, for
        ``lifetime_ms``; an offer made again replaces the previous one. Returns the deadline (Redis time, ms).

        Raises:
            redis.exceptions.ConnectionError: Redis is unreachable.
        """
        if not leases:
            return 0
        return int(await self._offer(keys=[self.keys.offers],
                                     args=[lifetime_ms, *(f"{x.address}\n{x.value}" for x in leases)]))

    async def live_offers(self) -> list[Lease]:
        """The offers not expired yet (the expired ones are dropped), as the leases they were made under.

        Raises:
            redis.exceptions.ConnectionError: Redis is unreachable.
        """
        out = []
        for member in await self._live_offers(keys=[self.keys.offers]):
            address, _, value = _s(member).partition("\n")
            fence = value.rpartition("|")[2]
            out.append(Lease(address, value, int(fence) if fence.isdigit() else 0))
        return out

    async def take_offers(self, worker_id: str, count: int) -> list[tuple[str, str, int]]:
        """Pop up to ``count`` live offers of other workers, oldest first: for each, the BAL, the lease value
        :meth:`transfer` must replace ('' when the lease is gone) and the milliseconds left before the offer's
        deadline. Offers whose lease changed hands are dropped.

        Raises:
            redis.exceptions.ConnectionError: Redis is unreachable.
        """
        raw = [_s(x) for x in await self._take(keys=[self.keys.offers],
                                               args=[worker_id, count, self.keys.lease("")])]
        return [(raw[i], raw[i + 1], int(raw[i + 2])) for i in range(0, len(raw), 3)]

    async def transfer(self, address: str, replaced: str, worker_id: str, ttl_ms: int) -> tuple[str, Lease | None]:
        """Move the lease of ``address`` to ``worker_id`` if it is still ``replaced`` (new fencing token: the
        previous holder's publications are refused as stale from now on), or take it if it is gone.

        Returns:
            ``("handed-over", lease)``, ``("acquired", lease)`` (the lease was gone: its holder died or released
            it), ``("taken", None)`` (another worker holds it) or ``("gone", None)`` (the BAL was removed or
            stopped meanwhile).

        Raises:
            redis.exceptions.ConnectionError: Redis is unreachable (nothing was moved).
        """
        previous = replaced.rpartition("|")[0] or worker_id
        how, fence = await self._transfer(
            keys=[self.keys.lease(address), self.keys.fence(address), self.keys.held(worker_id),
                  self.keys.held(previous), self.keys.bals, self.keys.stopped, self.keys.handed(previous)],
            args=[replaced, worker_id, ttl_ms, address])
        name = {1: "handed-over", 2: "acquired", 0: "taken", -1: "gone"}[int(how)]
        lease = Lease(address, f"{worker_id}|{int(fence)}", int(fence)) if int(how) > 0 else None
        return name, lease

    async def take_handed(self, worker_id: str) -> list[tuple[str, int]]:
        """The BALs handed over from ``worker_id`` since its last look, each with the new lease's fencing token
        (the set is emptied: each is told once).

        Raises:
            redis.exceptions.ConnectionError: Redis is unreachable.
        """
        out = []
        for member in await self._take_handed(keys=[self.keys.handed(worker_id)]):
            address, _, fence = _s(member).rpartition("\n")
            out.append((address, int(fence)))
        return out

    async def mark_released(self, addresses: list[str], ttl_ms: int) -> None:
        """Say that the sessions of these BALs handed over are closed here (their takers may start IDLE: Dovecot
        stops notifying every session of a mailbox in an imap process when one of them closes).

        Raises:
            redis.exceptions.ConnectionError: Redis is unreachable.
        """
        async with self.redis.pipeline(transaction=False) as pipe:
            for address in addresses:
                pipe.set(self.keys.released(address), "1", px=ttl_ms)
            await pipe.execute()

    async def released(self, address: str) -> bool:
        """Whether the previous holder of ``address`` said its session is closed (the mark is consumed).

        Raises:
            redis.exceptions.ConnectionError: Redis is unreachable.
        """
        return bool(await self.redis.delete(self.keys.released(address)))

    async def live_workers(self) -> list[str]:
        """The ids of the live workers (heartbeat not expired), in one round trip.

        Raises:
            redis.exceptions.ConnectionError: Redis is unreachable.
        """
        now_s, now_us = await self.redis.time()
        return [_s(w) for w in await self.redis.zrangebyscore(self.keys.workers, now_s * 1000 + now_us // 1000,
                                                              "+inf")]

    async def held_by(self, workers: set[str]) -> set[str]:
        """The BALs these workers leased (their held sets: some may have lapsed or moved since).

        Raises:
            redis.exceptions.ConnectionError: Redis is unreachable.
        """
        if not workers:
            return set()
        return {_s(a) for a in await self.redis.sunion([self.keys.held(w) for w in sorted(workers)])}

    async def workers(self) -> dict[str, dict[str, str]]:
        """The live workers and their last figures.

        Raises:
            TransportError: Redis is unreachable.
        """
        with redis_errors():
            now_s, now_us = await self.redis.time()
            now = now_s * 1000 + now_us // 1000
            ids = [_s(w) for w in await self.redis.zrangebyscore(self.keys.workers, now, "+inf")]
            out: dict[str, dict[str, str]] = {}
            for worker_id in ids:
                raw = await self.redis.hgetall(self.keys.worker(worker_id))
                out[worker_id] = {_s(k): _s(v) for k, v in raw.items()}
        return out

    async def events(self, after: str = "0", *, count: int = 1000, block_ms: int | None = None
                     ) -> list[FleetEvent]:
        """Events after entry ``after`` (XREAD; for tests and tools: the LPS uses :class:`EventReader`).

        Raises:
            TransportError: Redis is unreachable.
        """
        with redis_errors():
            answer = await self.redis.xread({self.keys.events: after}, count=count, block=block_ms)
        return [FleetEvent.from_entry(eid, raw) for _, entries in answer or [] for eid, raw in entries]

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[FleetStore]:
        """``async with store.session():`` closes the client at the end."""
        try:
            yield self
        finally:
            await self.aclose()
