"""A fleet worker: claims BALs with leases, watches each with ``Mailbox.watch``, publishes every message once.

Each tick (a third of the lease TTL) the worker says it is alive, renews its leases in one round
trip, drops the BALs removed from the desired set, and balances: it aims at
``min(capacity, ceil(active BALs / live workers))`` BALs, *offering* extras when a worker joins
and taking offers, then free BALs (in random order, so workers do not contend) when below its share;
a look for free BALs that found none is made again only once something can have freed one, or after a
pause doubled at each empty look (:meth:`Worker._may_be_free`).
It claims nothing on its first tick (workers started together see each other first) and no more
per tick than its connect limiter lets through meanwhile.

A planned move is make-before-break (docs/fleet.md): the holder keeps watching an offered BAL; the
taker opens the IMAP session first, then moves the lease in one script (new fencing token), and
only then reads the checkpoint and scans. A clean shutdown drains the same way.

A watched BAL resumes from its checkpoint: ``Mailbox.watch`` scans ``UID SEARCH UID n+1:*``
(RFC 3501 §6.4.4) at every (re)connection, so a message delivered while nobody watched is
published, once (the publish script refuses a UID already published and a stale fencing token).

Redis going away does not stop the watches: the IMAP sessions stay open, publishing waits and
retries, leases are renewed (or taken back with a new fencing token) once Redis answers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import datetime as dt
import logging
import math
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from mssante.client import ConnectLimiter, Mailbox, MailboxEvent, MessageSummary, WatchState
from mssante.client._watch import watch_fetching
from mssante.errors import MssanteError, PSCError, UsageError

from ._connect import Connector
from ._headers import X_MSS_ITEM, x_mss_of
from ._model import BALSpec, message_fields
from ._presence import Presence
from ._store import _REDIS_DOWN, Checkpoint, FleetStore, Lease, Published

__all__ = ["Worker", "WorkerSettings"]

log = logging.getLogger("mssante.fleet.worker")
T = TypeVar("T")


_MALLOC_TRIM: Any = None
#: Seconds a stopped watch has to end before its sessions are aborted (a LOGOUT is bounded by 1 s).
_STOP_GRACE = 5.0
#: Seconds a fleet-wide connect token taken for the waiters queued then stays usable (they start at once; one
#: left by a waiter cancelled meanwhile is dropped rather than spent late, beyond the bucket's bound).
_TOKEN_LIFE = 0.05


def _trim_heap() -> None:
    """Give the C heap's free pages back to the system (glibc ``malloc_trim``; elsewhere nothing).

    A burst of TLS handshakes (a claim, a takeover) allocates and frees megabytes of OpenSSL buffers; glibc
    keeps them, so the worker's RSS would stay at the burst's peak instead of what its idle BALs hold.
    """
    global _MALLOC_TRIM  # looked up once
    if _MALLOC_TRIM is None:
        try:
            _MALLOC_TRIM = getattr(ctypes.CDLL(None), "malloc_trim", False)  # the process's own C library
        except OSError:
            _MALLOC_TRIM = False
    if _MALLOC_TRIM:
        _MALLOC_TRIM(0)


class _OperatorLimiter(ConnectLimiter):
    """The worker's :class:`ConnectLimiter`, then a token of the operator's fleet-wide bucket, for every handshake
    of the mailboxes given it: first connections and reconnections alike (before, only a BAL's first connection
    asked the fleet-wide bucket, so a wave of reconnections, an operator restart, went past the fleet's limit)."""

    def __init__(self, local: ConnectLimiter, permit: Callable[[], Awaitable[None]]) -> None:
        super().__init__(local.rate, local.burst, local.concurrent, jitter=local.jitter)
        self.local = local
        self._permit = permit

    def delay(self) -> float:
        """The worker's limiter's :meth:`ConnectLimiter.delay` (the operator's bucket is asked in :meth:`slot`)."""
        return self.local.delay()

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """The worker's slot (its pace, jitter and concurrency), then the operator's token, taken right before the
        handshake starts: a start follows its grant by a few loop turns at most, so the fleet-wide bucket bounds
        the starts themselves (a token taken first and used after the worker's pacing, or after a stalled loop,
        started up to a second late: 127 handshakes in one second against a fleet-wide 120 in a benchmark run).

        Raises:
            Nothing (cancellation aside).
        """
        async with self.local.slot():
            await self._permit()
            self.granted += 1
            yield


@dataclass(frozen=True, kw_only=True)
class WorkerSettings:
    """How a worker behaves.

    Attributes:
        capacity: the most BALs this worker watches.
        lease_ttl: seconds a lease lives without renewal (a dead worker's BALs move after this).
        connect_rate, connect_burst: the worker's connect limiter (connections per second, back to
            back): a :class:`mssante.client.ConnectLimiter` given to every mailbox of the worker, so
            that first connections, reconnections and their catch-up scans all go through it.
        connect_jitter: share of one connect interval each start is randomly delayed by.
        connect_concurrent: handshakes in progress at most in this worker.
        catch_up_concurrent: BALs of this worker catching up at once at most (the scan and fetches
            after a (re)connection, until the first wait; 200 UIDs per ``UID FETCH``): a takeover or
            an operator restart fetches what was missed a bounded number of BALs at a time.
        operator_rate, operator_burst: the fleet-wide connect limit toward one operator, shared by
            every worker through Redis; None: no fleet-wide limit.
        operators: BAL domain (lower case) → operator name: the domains one operator hosts share its
            fleet-wide bucket (``{"ch-a.mssante.fr": "op1", "ch-b.mssante.fr": "op1"}``); a domain not
            listed is its own operator. Fifty domains of one operator would otherwise get fifty limits.
        redis_retry_max: longest pause between two attempts while Redis is unreachable (s).
        x_mss: fetch each new message's X-MSS header fields for its event (in the watch's own
            ``UID FETCH``, with the summary: no other command, no other connection).
        presence_interval: seconds between two looks of the fast failure detector at the peers'
            presence connections (:mod:`mssante.fleet._presence`); None: no fast detection, a dead
            worker's BALs move after ``lease_ttl``.
        presence_grace: seconds a peer's presence connection must be missing before its leases are
            expired: a worker whose connection merely dropped (a network blip, Redis restarting)
            reconnects within it and keeps its BALs; a dead process is taken over after about
            ``presence_grace + presence_interval`` plus one tick and the connections.
        desired_max_age: seconds a worker keeps the desired set it read while its version key has not
            moved (:meth:`FleetStore.bals`): ``add``/``remove`` are seen at the next tick, a direct write
            of the hash without the version within this time. 0: read the whole set every tick.
        drain_timeout: seconds :meth:`Worker.shutdown` waits for the other workers to take its BALs
            by handover (each BAL watched until its new worker's session is up) before it releases
            what is left; None: three lease TTLs; 0: release at once.

    Raises:
        UsageError: a non-positive capacity, TTL, rate, burst, concurrency or presence interval, or a
            negative jitter, grace, drain timeout or desired_max_age.
    """

    capacity: int = 1000
    lease_ttl: float = 15.0
    connect_rate: float = 20.0
    connect_burst: int = 5
    connect_jitter: float = 0.5
    connect_concurrent: int = 64
    catch_up_concurrent: int = 32
    operators: Mapping[str, str] = field(default_factory=dict)
    operator_rate: float | None = 100.0
    operator_burst: int = 20
    redis_retry_max: float = 2.0
    x_mss: bool = True
    presence_interval: float | None = 0.25
    presence_grace: float = 1.0
    desired_max_age: float = 10.0
    drain_timeout: float | None = None

    def __post_init__(self) -> None:
        if self.drain_timeout is not None and self.drain_timeout < 0:
            raise UsageError("drain_timeout must not be negative")
        object.__setattr__(self, "operators", {d.lower(): o for d, o in self.operators.items()})
        if (self.presence_interval is not None and self.presence_interval <= 0) or self.presence_grace < 0:
            raise UsageError("presence_interval must be positive (or None) and presence_grace not negative")
        if self.operator_rate is not None and (self.operator_rate <= 0 or self.operator_burst < 1):
            raise UsageError("operator_rate and operator_burst must be positive")
        if (self.capacity < 1 or self.lease_ttl <= 0 or self.redis_retry_max <= 0 or self.desired_max_age < 0
                or self.catch_up_concurrent < 1):
            raise UsageError("capacity, lease_ttl, redis_retry_max and catch_up_concurrent must be positive, "
                             "desired_max_age not negative")
        ConnectLimiter(self.connect_rate, self.connect_burst, self.connect_concurrent,
                       jitter=self.connect_jitter)  # raises UsageError on a bad connect setting

    @property
    def ttl_ms(self) -> int:
        """The lease TTL in milliseconds."""
        return max(1, int(self.lease_ttl * 1000))

    @property
    def drain_s(self) -> float:
        """Seconds a clean shutdown waits for its BALs to be taken by handover."""
        return 3 * self.lease_ttl if self.drain_timeout is None else self.drain_timeout

    @property
    def handover_settle_s(self) -> float:
        """Seconds a BAL taken by handover waits, scanning, for its previous session's end before IDLE: the
        previous holder is told at its next presence round (else its next tick)."""
        look = self.presence_interval if self.presence_interval is not None else self.lease_ttl / 3
        return 4 * look + 1.0

    @property
    def offer_ms(self) -> int:
        """How long an offer lives: two lease TTLs, time for a taker to connect through its limiters; a taker
        gives up at the offer's deadline, and only then may the holder offer the BAL again."""
        return 2 * self.ttl_ms


@dataclass(slots=True)
class _Watch:
    """What the worker keeps per BAL, beside the mailbox and its watch task: nothing more."""

    spec: BALSpec
    lease: Lease
    task: asyncio.Task[None] | None = None
    state: WatchState | None = None
    checkpoint: Checkpoint | None = None  # read with the claim (one round trip per tick)...
    checkpoint_read: bool = False  # ... unless Redis was away then
    done: bool = False
    taking: str | None = None  # being taken by handover: the lease value to replace ('' gone); None: ours
    give_up: float = 0.0  # loop time: a taking watch not transferred by then is dropped (its offer's deadline)
    transferring: bool = False  # the transfer script is on its way: not to be cancelled
    stale: bool = False  # a publication was refused as stale (the lease moved)
    idle_after: float | None = None  # handed over: loop time until which IDLE waits for the old session's end
    box: Mailbox | None = None  # its mailbox once built (aborted if the watch does not end when cancelled)


@dataclass
class WorkerFigures:
    """What a worker reports (``mssante fleet status``, metrics)."""

    published: int = 0
    duplicates: int = 0
    stale: int = 0
    failures: int = 0
    redis_errors: int = 0
    takeovers: int = 0
    operator_waits: int = 0
    handovers_out: int = 0
    handovers_in: int = 0
    heap_trims: int = 0
    catch_up_waits: int = 0
    reconnects_ended: int = 0  # the reconnections of the watches that left this worker (moved, stopped, removed)
    lag_ms: int = 0
    stops: dict[str, int] = field(default_factory=dict)


class _NotTaken(Exception):
    """A handover's transfer found the lease in other hands, or the BAL removed: the watch ends quietly."""


class Worker:
    """One fleet worker process (or task): see the module docstring.

    Args:
        store: the fleet's Redis state.
        connector: builds each BAL's mailbox from its reference (:class:`MailboxConnector`).
        settings: capacity, lease TTL, connect limiter.
        worker_id: a unique name (default: random).
    """

    def __init__(self, store: FleetStore, connector: Connector, *, settings: WorkerSettings | None = None,
                 worker_id: str | None = None) -> None:
        self.store = store
        self.connector = connector
        self.settings = settings or WorkerSettings()
        self.id = worker_id or uuid.uuid4().hex[:12]
        self.limiter = ConnectLimiter(self.settings.connect_rate, self.settings.connect_burst,
                                      self.settings.connect_concurrent, jitter=self.settings.connect_jitter)
        self.figures = WorkerFigures()
        self.watches: dict[str, _Watch] = {}
        self.alive_workers = 0
        self.ticks = 0
        self.last_tick_ok: float | None = None  # loop time of the last tick that reached Redis
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()  # tick now: stopping, or leases changed hands (the failure detector)
        self._peers_over = False  # the failure detector's loop must end (set before its task is cancelled)
        self.presence = (Presence(store, self.id, grace=self.settings.presence_grace)
                         if self.settings.presence_interval is not None else None)
        self._closing: set[asyncio.Task[None]] = set()  # watches stopped, their sessions still closing
        self._operator_turn: dict[str, asyncio.Lock] = {}
        self._connecting: set[str] = set()  # BALs claimed whose watch has not connected yet
        self._burst = False  # BALs were connecting at the last tick: trim the heap once they all have
        self._operator_queue: dict[str, int] = {}  # BALs waiting for the operator's bucket
        self._operator_tokens: dict[str, tuple[int, float]] = {}  # tokens taken for them, not yet handed out, when
        self._operator_limiters: dict[str, ConnectLimiter] = {}
        self._live_before: set[str] = set()  # live workers at the previous tick
        self._orphans: set[str] = set()  # the BALs of the workers that left lately (their held sets)
        self._stranded_watch_until = 0.0  # loop time until which stranded BALs are looked for (a worker left)
        self._free_before: set[str] = set()  # BALs unleased at the previous tick's look
        self._keep_excess_until = 0.0  # loop time before which stranded BALs taken are not released
        self._rng = random.Random()  # noqa: S311 - balancing order, not cryptography
        self._catch_up = asyncio.Semaphore(self.settings.catch_up_concurrent)
        self._stopping: dict[asyncio.Task[Any], _Watch] = {}  # stopped watches not ended yet
        self._unreadable_seen: dict[str, str] = {}  # desired-set entries not readable -> digest already reported
        self._offers: dict[str, float] = {}  # BALs offered under their current lease -> loop time of the deadline
        self._watches_left = 0  # watches taken out of self.watches so far (_left)
        # the last look for free BALs found none: what it saw (desired set, then stopped, live workers, watches),
        # when to look again all the same, and the pause before that (doubled at each look that finds none)
        self._none_free: tuple[object, tuple[object, ...]] | None = None
        self._look_again_at = 0.0
        self._look_pause = 0.0
        self._look_now = False  # leases changed hands (the failure detector): look at the next tick

    def __repr__(self) -> str:
        return f"Worker({self.id!r}, bals={len(self.watches)})"

    # -- life -----------------------------------------------------------------------------------
    async def run(self) -> None:
        """Work until :meth:`shutdown`; then hand the BALs over to the other workers (``drain_timeout``), stop
        every watch and release the leases left.

        Cancelling the task instead stops the watches *without* releasing the leases, like a
        crash: the other workers take the BALs over once the leases expire.

        Raises:
            Nothing: Redis failures are retried, BAL failures become events.
        """
        period = self.settings.lease_ttl / 3
        peers = asyncio.create_task(self._watch_peers(), name=f"fleet-presence {self.id}") if self.presence else None
        try:
            while not self._stop.is_set():
                soon = False
                try:
                    soon = await self.tick()
                    self.last_tick_ok = asyncio.get_running_loop().time()
                except _REDIS_DOWN as exc:
                    self.figures.redis_errors += 1
                    log.warning("redis unreachable, watches go on", extra={"worker": self.id, "event": "redis-down",
                                                                          "error": str(exc)})
                with contextlib.suppress(TimeoutError):
                    # below its share with BALs still to take (a worker joined, or the others are releasing
                    # theirs): look again sooner, so released BALs are not left unwatched for a whole period
                    await asyncio.wait_for(self._wake.wait(), period / 4 if soon else period)
                self._wake.clear()
        finally:
            try:
                if self._stop.is_set():
                    await self._drain()  # the failure detector still runs: a worker dying meanwhile is evicted
                if peers is not None:
                    # The flag too: a cancellation swallowed below us (Python 3.11's wait_for drops one that
                    # races a result) left the loop running and this run waiting for it forever.
                    self._peers_over = True
                    peers.cancel()
                    await asyncio.gather(peers, return_exceptions=True)
                await self._stop_watches(list(self.watches), release=self._stop.is_set(), wait=True)
            finally:
                if self.presence is not None:  # a crash (cancelled) closes it too: the peers take over at once
                    await self.presence.aclose(unregister=self._stop.is_set())

    def shutdown(self) -> None:
        """Ask :meth:`run` to stop cleanly: BALs handed over to the other workers, then the leases left released."""
        self._stop.set()
        self._wake.set()

    async def _watch_peers(self) -> None:
        """The fast failure detector's loop: a round every ``presence_interval``; a tick at once when leases
        changed hands (a peer evicted or gone, this worker evicted)."""
        assert self.presence is not None and self.settings.presence_interval is not None
        while self.presence.supported and not self._peers_over:
            try:
                changed, _ = await self.presence.check()
                if changed:
                    self._look_now = True
                    self._wake.set()
                await self._hand_off()
            except _REDIS_DOWN:
                self.presence.forget()
            await asyncio.sleep(self.settings.presence_interval)

    def healthy(self) -> bool:
        """True when the last tick reached Redis less than two lease TTLs ago (leases are being renewed)."""
        if self.last_tick_ok is None:
            return False
        return asyncio.get_running_loop().time() - self.last_tick_ok < 2 * self.settings.lease_ttl

    @property
    def reconnects(self) -> int:
        """Watch reconnections by this worker since it started: those of the watches that left it (moved, stopped,
        removed) and those of the BALs held now; it never goes down (a Prometheus counter, ``fleet status``)."""
        return self.figures.reconnects_ended + sum(w.state.reconnects for w in self.watches.values()
                                                   if w.state is not None)

    def _left(self, watch: _Watch) -> _Watch:
        """Account for a watch taken out of :attr:`watches`: its reconnections are kept in the worker's total."""
        if watch.state is not None:
            self.figures.reconnects_ended += watch.state.reconnects
        self._watches_left += 1
        return watch

    def _figures(self) -> dict[str, str | int]:
        return {"bals": len(self.watches), "capacity": self.settings.capacity, "published": self.figures.published,
                "duplicates": self.figures.duplicates, "failures": self.figures.failures,
                "reconnects": self.reconnects, "redis_errors": self.figures.redis_errors,
                "takeovers": self.figures.takeovers, "operator_waits": self.figures.operator_waits,
                "lag_ms": self.figures.lag_ms,
                "connects": self.limiter.granted,
                "handovers_out": self.figures.handovers_out, "handovers_in": self.figures.handovers_in,
                "connecting": self.connecting_count, "heap_trims": self.figures.heap_trims,
                "catch_up_waits": self.figures.catch_up_waits,
                "evicted_peers": self.presence.evictions if self.presence else 0}

    @property
    def connecting_count(self) -> int:
        """BALs claimed or being taken whose IMAP session is not up yet."""
        return len(self._connecting)

    def _claim_budget(self) -> int:
        """How many BALs one worker can connect during one tick (its connect limiter's output)."""
        return self.settings.connect_burst + int(self.settings.connect_rate * self.settings.lease_ttl / 3)

    async def tick(self) -> bool:
        """One round: heartbeat, renew, drop removed BALs, balance.

        Balance moves as few BALs as it can: a worker above ``ceil(active / live workers)`` offers
        only its excess (still watching it: make-before-break), and no more per tick than one
        worker's connect limiter lets through in a tick less the BALs in transit (live offers, BALs
        without a lease); a worker below its share takes offers, then free BALs, no more than its
        limiter's budget less the BALs it is still connecting.

        Returns:
            True when this worker is below its share and should look again soon.

        Raises:
            redis.exceptions.ConnectionError: Redis is unreachable (:meth:`run` retries).
        """
        self.ticks += 1
        ttl = self.settings.ttl_ms
        await self._keep_leases()
        self.alive_workers = await self.store.heartbeat(self.id, ttl, self._figures())
        if self._burst and not self._connecting:
            _trim_heap()  # the handshakes are over: their buffers go back to the system
            self.figures.heap_trims += 1
        self._burst = bool(self._connecting)
        desired = await self.store.bals(max_age=self.settings.desired_max_age or None)
        await self._report_unreadable()
        stopped = await self.store.stopped()
        gone = [a for a, w in self.watches.items() if desired.get(a) != w.spec or a in stopped]
        await self._stop_watches(gone, release=True)
        active = [a for a in desired if a not in stopped]
        target = min(self.settings.capacity, math.ceil(len(active) / max(1, self.alive_workers)))
        now = asyncio.get_running_loop().time()
        live = set(await self.store.live_workers())
        departed = self._live_before - live - {self.id}
        self._live_before = live
        if departed:  # a worker left (evicted, lease TTL): its BALs, from its held set, may be left stranded
            self._orphans = await self.store.held_by(departed)
            self._stranded_watch_until = now + 3 * self.settings.lease_ttl
        offered = {a for a, deadline in self._offers.items() if deadline > now}
        if len(self.watches) - len(offered) > target and now >= self._keep_excess_until:
            # Offer the excess (make-before-break): this worker watches each offered BAL until a worker below its
            # share has its own session up and moves the lease (docs/fleet.md). Offers live and not taken, taken
            # and still connecting, and BALs without a lease are in transit: offer no more than a joiner connects
            # in a tick less those, so a joiner slower than the limiter's budget is not handed hundreds at once.
            unleased = await self.store.unleased([a for a in active if a not in self.watches])
            self._orphans.intersection_update(unleased)  # those leased since are nobody's orphans any more
            theirs = [x for x in await self.store.live_offers() if x.worker != self.id]
            in_transit = len(unleased) + len(theirs) + len(offered)
            excess = min(len(self.watches) - len(offered) - target, self._claim_budget() - in_transit)
            if excess <= 0:
                return False
            candidates = sorted(a for a, w in self.watches.items()
                                if a not in offered and w.taking is None and a not in self._connecting)
            extras = self._rng.sample(candidates, min(excess, len(candidates)))
            await self._offer(extras)
            log.info("BALs offered for balance", extra={"worker": self.id, "event": "offered",
                                                        "count": len(extras), "target": target})
            return False
        if self.ticks == 1:
            return True  # first tick: only say we are here, so workers started together see each other first
        # no more claims than the limiter lets through in a tick, less those still connecting: a worker that
        # cannot keep up (a loaded machine) does not pile up leases of BALs it is not watching yet
        budget = self._claim_budget() - len(self._connecting)
        want = min(target - len(self.watches), budget)
        claimed = 0
        free: list[str] = []
        picks: list[str] = []
        below = want > 0
        if below:
            # offers first: their BALs stay watched by their holder until this worker's session is up
            for address, replaced, left_ms in await self.store.take_offers(self.id, want):
                spec = desired.get(address)
                if spec is None or address in stopped or address in self.watches:
                    continue  # removed or stopped meanwhile: its holder drops it at its next tick
                watch = _Watch(spec, Lease(address, "", 0), taking=replaced, give_up=now + left_ms / 1000)
                self.watches[address] = watch
                self._connecting.add(address)
                watch.task = asyncio.create_task(self._watch(watch), name=f"fleet-take {address}")
                claimed += 1
            want -= claimed
        if below:
            # BALs nobody holds, in random order (workers do not contend for the same ones), leased in one
            # round trip: a tick stays short however loaded the worker, so its leases never age unrenewed.
            # No more claims per tick than the connect limiter lets through meanwhile: a lease held while
            # waiting for the limiter is a BAL another worker could already be watching.
            seen = (frozenset(stopped), frozenset(live), len(self.watches), self._watches_left)
            if self._may_be_free(desired, seen, now):
                free = await self.store.unleased([a for a in active if a not in self.watches])
                self._orphans.intersection_update(free)
                self._rng.shuffle(free)
                picks = free[:max(0, want)]
                self._looked(desired, seen, now, found=bool(free))
        elif budget > 0 and len(self.watches) < self.settings.capacity and now < self._stranded_watch_until:
            # at its share while a dead worker's BALs are being taken over: those of its BALs still unleased since
            # this worker's previous tick are stranded (the workers below their share cannot connect them yet: a
            # kill while the newest worker still connects its own share). Take them, up to capacity, and keep
            # the excess a lease TTL before giving it back, so they do not bounce between workers. Not BALs
            # released for a joiner: they are its share, taking them would only move them twice.
            free = await self.store.unleased([a for a in active if a not in self.watches])
            self._orphans.intersection_update(free)  # leased since: if released again, it is for a joiner
            stranded = [a for a in free if a in self._free_before and a in self._orphans]  # not a joiner's share
            picks = stranded[:min(budget, self.settings.capacity - len(self.watches))]
            if picks:
                self._keep_excess_until = now + self.settings.lease_ttl
                log.info("stranded BALs taken over", extra={"worker": self.id, "event": "stranded",
                                                            "count": len(picks)})
        self._free_before = set(free) - set(picks)
        if picks:
            leases = [lease for lease in await self.store.acquire_many(picks, self.id, ttl)
                      if lease is not None]  # None: another worker was quicker
            # their checkpoints in the same tick, one round trip (not one per BAL from its watch)
            checkpoints: dict[str, Checkpoint | None] = {}
            with contextlib.suppress(*_REDIS_DOWN):
                checkpoints = await self.store.checkpoints([lease.address for lease in leases]) if leases else {}
            for lease in leases:
                if lease.fence > 1:
                    self.figures.takeovers += 1
                watch = _Watch(desired[lease.address], lease, checkpoint=checkpoints.get(lease.address),
                               checkpoint_read=lease.address in checkpoints)
                self.watches[lease.address] = watch
                self._connecting.add(lease.address)
                watch.task = asyncio.create_task(self._watch(watch), name=f"fleet-watch {lease.address}")
                claimed += 1
        if claimed:
            log.info("BALs claimed", extra={"worker": self.id, "event": "claimed", "count": claimed,
                                            "bals": len(self.watches), "target": target})
        # below its share and BALs flowing in (or just joined, the others releasing at their next tick); or BALs of
        # a worker that left still unleased (stranded at the next tick)
        return (len(self.watches) < target and (claimed > 0 or self.ticks <= 6)) or bool(
            self._free_before and now < self._stranded_watch_until)

    def _may_be_free(self, desired: object, seen: tuple[object, ...], now: float) -> bool:
        """Whether a worker below its share should look for free BALs (an MGET over every active BAL it does not
        hold: 95,000 keys at 100,000 BALs). Not when its last look found none and nothing that can free or add a
        BAL has happened since: the desired set changed (read again when its version moved, or after
        ``desired_max_age``), a stop added or cleared, a worker left or joined, this worker's own watches changed,
        the failure detector saw leases change hands; and only until a pause (one tick, doubled at each look that
        finds none, up to ``desired_max_age``) is over. A takeover is never delayed: a worker that left changes
        the live set, and its BALs are looked for at every tick while they may be stranded."""
        return (not self._unchanged_since_look(desired, seen) or self._look_now or now >= self._look_again_at
                or now < self._stranded_watch_until)

    def _unchanged_since_look(self, desired: object, seen: tuple[object, ...]) -> bool:
        """Whether the last look found no free BAL and saw this desired set and ``seen``. The set read again
        unchanged (``desired_max_age``) is the same: compared once (its entries are the store's same objects),
        then kept, so the pause is not reset each time the set is read again."""
        if self._none_free is None or self._none_free[1] != seen:
            return False
        if self._none_free[0] is not desired:
            if self._none_free[0] != desired:
                return False
            self._none_free = (desired, seen)
        return True

    def _looked(self, desired: object, seen: tuple[object, ...], now: float, *, found: bool) -> None:
        """Remember what a look for free BALs saw when it found none (:meth:`_may_be_free`)."""
        self._look_now = False
        tick = self.settings.lease_ttl / 3
        if found:
            self._none_free, self._look_pause = None, 0.0
            return
        unchanged = self._unchanged_since_look(desired, seen)
        self._look_pause = min(2 * self._look_pause, max(tick, self.settings.desired_max_age)) if unchanged else tick
        self._none_free = (desired, seen)
        self._look_again_at = now + self._look_pause

    async def _report_unreadable(self) -> None:
        """A ``bal-error`` event for each desired-set entry that is not a BAL description, once per value across
        the fleet (the store dedups; this worker remembers what it saw, so no round trip per tick)."""
        for address, (digest, reason) in self.store.unreadable.items():
            if self._unreadable_seen.get(address) == digest:
                continue
            if await self.store.report_unreadable(address, digest, reason):
                self.figures.failures += 1
                log.warning("unreadable BAL entry left out", extra={"worker": self.id, "bal": address,
                                                                    "event": "bal-error", "reason": reason})
            self._unreadable_seen[address] = digest

    async def _keep_leases(self) -> None:
        """Renew the leases (one round trip); tell a handover (a BAL this worker offered, now held by another) from
        a lost lease; take back, with a new fencing token, those that lapsed; drop the takings never connected.

        Raises:
            redis.exceptions.ConnectionError: Redis is unreachable.
        """
        ttl = self.settings.ttl_ms
        await self._hand_off()
        now = asyncio.get_running_loop().time()
        handed: list[str] = []
        for address in [a for a, w in self.watches.items() if w.done]:
            watch = self._left(self.watches.pop(address))
            if self._offers.pop(address, None) is not None and watch.stale:
                handed.append(address)  # its publication was refused: the taker moved the lease
        late = [a for a, w in self.watches.items() if w.taking is not None and not w.transferring and now >= w.give_up]
        if late:  # its holder still watches each: the offer lapses there and is made again
            log.info("handover given up: session not up by the offer's deadline",
                     extra={"worker": self.id, "event": "take-given-up", "count": len(late), "bals": late[:20]})
            await self._stop_watches(late, release=False)
        held = [w for w in self.watches.values() if w.taking is None]
        # leases first (the heartbeat after): a late tick must not lose them to its own other round trips
        renewed = await self.store.renew([w.lease for w in held], ttl)
        lapsed = [w for w, kept in zip(held, renewed, strict=True) if not kept]
        offered = [w.spec.address for w in lapsed if w.spec.address in self._offers]
        if offered:
            # held by another worker: a taker moved it after its session was up, a handover, not a loss (gone: the
            # lease lapsed or this worker was evicted, taken back below like any other)
            moved = [a for a, h in zip(offered, await self.store.holders(offered), strict=True) if h is not None]
            await self._stop_watches(moved, release=False)
            handed += moved
            lapsed = [w for w in lapsed if w.spec.address not in set(moved)]
        if handed:
            self.figures.handovers_out += len(handed)
            log.info("handed over", extra={"worker": self.id, "event": "handed-over", "count": len(handed),
                                           "bals": handed[:20]})
        if lapsed:
            # expired (Redis away, or this worker starved of CPU past the TTL): take them back in one round trip,
            # not one per BAL (a tick of hundreds of round trips made the next leases lapse in turn)
            lost = []
            again = await self.store.acquire_many([w.spec.address for w in lapsed], self.id, ttl)
            for watch, lease in zip(lapsed, again, strict=True):
                if lease is not None:
                    watch.lease = lease  # ours again, with a new fencing token (an offer made before is void)
                    self._offers.pop(watch.spec.address, None)
                else:
                    lost.append(watch.spec.address)
            if lost:
                log.info("leases lost", extra={"worker": self.id, "event": "lost", "count": len(lost),
                                               "bals": lost[:20]})
                await self._stop_watches(lost, release=False)

    async def _offer(self, addresses: list[str]) -> None:
        """Offer these BALs for a handover (still watched here, leases renewed, until a taker moves them)."""
        if not addresses:
            return
        await self.store.offer([self.watches[a].lease for a in addresses], self.settings.offer_ms)
        deadline = asyncio.get_running_loop().time() + self.settings.offer_ms / 1000
        for address in addresses:
            self._offers[address] = deadline

    async def _drain(self) -> None:
        """A clean stop's handover: out of the live workers (the others' share grows), offer every BAL and keep
        renewing while the others take them, up to ``drain_timeout``; :meth:`run` then releases what is left. A
        lone worker, or a drain timeout of 0, releases at once."""
        timeout = self.settings.drain_s
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        before = self.figures.handovers_out
        try:
            while True:
                # BALs this worker was taking: their holders watch them still (those mid-transfer are kept)
                await self._stop_watches([a for a, w in self.watches.items()
                                          if w.taking is not None and not w.transferring], release=False)
                await self._keep_leases()
                others = await self.store.heartbeat(self.id, self.settings.ttl_ms, self._figures(), live=False)
                now = loop.time()
                if not self.watches or others == 0 or now >= end:
                    break
                await self._offer(sorted(a for a, w in self.watches.items() if w.taking is None
                                         and self._offers.get(a, 0.0) <= now))
                await asyncio.sleep(min(self.settings.lease_ttl / 12, end - now))
        except _REDIS_DOWN:
            return
        if timeout > 0:
            log.info("drained", extra={"worker": self.id, "event": "drained",
                                       "count": self.figures.handovers_out - before, "left": len(self.watches)})

    async def _stop_watches(self, addresses: list[str], *, release: bool, wait: bool = False) -> None:
        """Stop these watches; ``release`` their leases (one round trip).

        Without ``wait`` the sessions close in the background (a LOGOUT can take a second): the tick
        goes on renewing. Another worker may then watch the BAL while this one still closes; the
        fencing token keeps it from publishing twice.
        """
        watches = [self._left(self.watches.pop(a)) for a in addresses if a in self.watches]
        self._connecting.difference_update(addresses)  # a task cancelled before it ran has no finally
        for address in addresses:
            self._offers.pop(address, None)
        tasks = [w.task for w in watches if w.task is not None and not w.task.done()]
        for watch in watches:
            if watch.task is not None and not watch.task.done():
                self._stopping[watch.task] = watch
        for task in tasks:
            task.cancel()
            task.add_done_callback(self._stopped)
        if wait:
            await self._until_ended([*tasks, *self._closing])
        else:
            self._closing.update(tasks)
            for task in tasks:
                task.add_done_callback(self._closing.discard)
        leases = [w.lease for w in watches if w.taking is None]  # a BAL being taken is still its holder's
        if release and leases:
            with contextlib.suppress(*_REDIS_DOWN):
                await self.store.release_many(leases)

    def _stopped(self, task: asyncio.Task[Any]) -> None:
        self._stopping.pop(task, None)

    async def _until_ended(self, tasks: list[asyncio.Task[Any]]) -> None:
        """Wait for these (cancelled) watch tasks to end; those still running after ``_STOP_GRACE`` seconds have
        their sessions aborted. A cancellation swallowed below a watch (an await racing its own result) left it in
        IDLE, and the worker's stop waiting for it, for 2 minutes in a test run (29 minutes: the IDLE renewal)."""
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=_STOP_GRACE)
        if not pending:
            return
        for task in pending:
            watch = self._stopping.get(task)
            if watch is not None and watch.box is not None:
                watch.box.abort()  # its IDLE read ends at once: the watch sees a closed mailbox and returns
            task.cancel()
        _, stuck = await asyncio.wait(pending, timeout=_STOP_GRACE)
        log.warning("watches did not end when cancelled, sessions aborted",
                    extra={"worker": self.id, "event": "stop-aborted", "count": len(pending), "left": len(stuck)})

    # -- one BAL --------------------------------------------------------------------------------
    async def _redis(self, call: Callable[[], Awaitable[T]]) -> T:
        """Run ``call`` until Redis answers (the IMAP session stays open meanwhile)."""
        pause = 0.05
        while True:
            try:
                return await call()
            except _REDIS_DOWN:
                self.figures.redis_errors += 1
                await asyncio.sleep(pause)
                pause = min(pause * 2, self.settings.redis_retry_max)

    async def _watch(self, watch: _Watch) -> None:
        spec = watch.spec
        try:
            box = await self.connector.mailbox(spec, limiter=self._limiter_for(spec))
        except MssanteError as exc:
            self._connecting.discard(spec.address)
            if watch.taking is None:
                await self._end(watch, "bal-error", f"{type(exc).__name__}: {exc}")
            else:  # its holder still watches it (with its own credentials): no event from here
                self._take_failed(spec.address, exc)
                watch.done = True
            return
        watch.box = box
        box.add_listener(self._connected)  # one bound method for all: nothing more per BAL
        try:
            checkpoint = watch.checkpoint
            if watch.taking is None and not watch.checkpoint_read:
                checkpoint = await self._redis(lambda: self.store.checkpoint(spec.address))
            watch.checkpoint = None  # from now on the watch's own state is the reference
            watch.state = state = WatchState(folder=spec.folder,
                                             uidvalidity=checkpoint.uidvalidity if checkpoint else None,
                                             last_uid=checkpoint.uid if checkpoint else 0)
            items = (X_MSS_ITEM,) if self.settings.x_mss else ()
            take = (lambda state: self._take(watch, state)) if watch.taking is not None else None
            idle_ready = (lambda: self._may_idle(watch)) if watch.taking is not None else None
            async with box, contextlib.aclosing(watch_fetching(box, state, items, on_connected=take,
                                                               catch_up=self._catch_up_slot,
                                                               idle_ready=idle_ready,
                                                               on_uidvalidity_change=lambda old, new: self._uidvalidity(
                                                                   watch, old, new))) as watcher:
                async for summary, response in watcher:
                    result = await self._publish(watch, summary, x_mss_of(response) if items else None)
                    if result.status == "stale":
                        self.figures.stale += 1
                        log.info("fencing token stale, BAL left", extra={"worker": self.id, "bal": spec.address})
                        watch.stale = watch.done = True
                        return
                    if result.status == "duplicate":
                        self.figures.duplicates += 1
                        continue
                    self.figures.published += 1
        except _NotTaken:
            pass  # another worker took the offer first, or the BAL was removed: nothing to report
        except MssanteError as exc:
            if watch.taking is not None:  # its holder still watches it, and says so if it fails there too
                self._take_failed(spec.address, exc)
            elif isinstance(exc, PSCError):
                await self._end(watch, "psc-session-ended", str(exc))  # ECO.1.2.6
            else:
                await self._end(watch, "bal-error", f"{type(exc).__name__}: {exc}")
        finally:
            watch.done = True
            self._connecting.discard(spec.address)
            await self.connector.close(box)

    def _take_failed(self, address: str, exc: MssanteError) -> None:
        log.warning("handover failed before the lease moved", extra={
            "worker": self.id, "bal": address, "event": "take-failed", "reason": f"{type(exc).__name__}: {exc}"})

    async def _take(self, watch: _Watch, state: WatchState) -> None:
        """A taking watch's first connection is authenticated: move the lease here (the holder's publications are
        refused as stale from now on), then read the checkpoint the SELECT and catch-up scan start from.

        Raises:
            _NotTaken: another worker holds the lease, or the BAL was removed or stopped: the watch ends quietly.
        """
        address, replaced = watch.spec.address, watch.taking or ""
        watch.transferring = True
        transfer = asyncio.ensure_future(self._redis(lambda: self.store.transfer(address, replaced, self.id,
                                                                                 self.settings.ttl_ms)))
        try:
            how, lease = await asyncio.shield(transfer)
        except asyncio.CancelledError:  # stopped meanwhile (a shutdown): a lease moved here is given back
            transfer.add_done_callback(self._give_back)
            raise
        finally:
            watch.transferring = False
        if lease is None:
            log.info("offer not taken", extra={"worker": self.id, "bal": address, "event": f"take-{how}"})
            raise _NotTaken(how)
        watch.lease, watch.taking = lease, None
        if how == "handed-over":
            self.figures.handovers_in += 1
            watch.idle_after = asyncio.get_running_loop().time() + self.settings.handover_settle_s
        elif lease.fence > 1:
            self.figures.takeovers += 1  # its holder died (evicted) while this session was opening
        checkpoint = await self._redis(lambda: self.store.checkpoint(address))
        state.uidvalidity = checkpoint.uidvalidity if checkpoint else None
        state.last_uid = checkpoint.uid if checkpoint else 0

    async def _uidvalidity(self, watch: _Watch, previous: int | None, new: int | None) -> None:
        """A SELECT found another UIDVALIDITY than the checkpoint's: report it now (RFC 3501 §2.3.1.1), not with the
        next message, so a folder emptied or recreated is reported too; the checkpoint restarts from UID 0."""
        await self._redis(lambda: self.store.uidvalidity_changed(watch.lease, previous or 0, new or 0))

    async def _may_idle(self, watch: _Watch) -> bool:
        """Whether a BAL taken by handover may enter IDLE: once its previous holder said its session is closed
        (:meth:`_hand_off`), or after ``handover_settle_s``. Meanwhile the watch scans every 0.2 s instead.

        Why: Dovecot (2.3, ``client_limit`` > 1) watches a mailbox once per imap process for all its sessions and
        stops watching it when one of them closes: a session that entered IDLE before the other one closed is
        told of nothing more until its mailbox's check interval (30 s), measured in a benchmark run (p99 27 s).
        """
        if watch.idle_after is None:
            return True
        if asyncio.get_running_loop().time() >= watch.idle_after:
            log.info("handover: previous session not said closed in time, IDLE anyway",
                     extra={"worker": self.id, "bal": watch.spec.address, "event": "handover-unconfirmed"})
        else:
            try:
                if not await self.store.released(watch.spec.address):
                    return False
            except _REDIS_DOWN:
                return False
        watch.idle_after = None
        return True

    async def _hand_off(self) -> None:
        """Close at once the sessions of the BALs taken from this worker by handover (told by the transfer), then
        say so (:meth:`_may_idle`); checked with the failure detector's round, else at each tick."""
        told = [(a, fence) for a, fence in await self.store.take_handed(self.id)
                if a in self.watches and self.watches[a].taking is None and self.watches[a].lease.fence < fence]
        if not told:
            return
        # still the taker's lease (a taker stopped mid-transfer gives it back: then keep watching, the tick takes
        # the lease back; stopped right after this look, the BAL waits for that tick, its catch-up loses nothing)
        now = await self.store.holders([a for a, _ in told])
        handed = [a for (a, fence), value in zip(told, now, strict=True)
                  if value is not None and value.rpartition("|")[2] == str(fence)]
        if not handed:
            return
        watches = [self.watches[a] for a in handed]
        await self._stop_watches(handed, release=False)
        self.figures.handovers_out += len(handed)
        log.info("handed over", extra={"worker": self.id, "event": "handed-over", "count": len(handed),
                                       "bals": handed[:20]})
        task = asyncio.create_task(self._say_released(watches))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _say_released(self, watches: list[_Watch]) -> None:
        await asyncio.gather(*(w.task for w in watches if w.task is not None), return_exceptions=True)
        with contextlib.suppress(*_REDIS_DOWN):
            await self.store.mark_released([w.spec.address for w in watches], 30_000)

    @contextlib.asynccontextmanager
    async def _catch_up_slot(self) -> AsyncIterator[None]:
        """One of the worker's ``catch_up_concurrent`` catch-up slots (counted in ``catch_up_waits`` when full)."""
        if self._catch_up.locked():
            self.figures.catch_up_waits += 1
        async with self._catch_up:
            yield

    def _give_back(self, transfer: asyncio.Future[tuple[str, Lease | None]]) -> None:
        """Release the lease a transfer moved here after its watch was stopped: its previous holder, still
        watching, takes it back at its next tick instead of the BAL staying leased to nobody watching it."""
        if transfer.cancelled() or transfer.exception() is not None or (lease := transfer.result()[1]) is None:
            return
        task = asyncio.create_task(self._release_quietly(lease))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _release_quietly(self, lease: Lease) -> None:
        with contextlib.suppress(*_REDIS_DOWN):
            await self.store.release(lease)

    def _connected(self, event: MailboxEvent) -> None:
        if event.kind == "connected":
            self._connecting.discard(event.address)

    def _limiter_for(self, spec: BALSpec) -> ConnectLimiter:
        """What paces every connection of a BAL's mailbox, its first and each reconnection: the worker's limiter,
        then its operator's fleet-wide bucket (one :class:`_OperatorLimiter` per operator, shared by its BALs)."""
        if self.settings.operator_rate is None:
            return self.limiter
        domain = spec.address.rpartition("@")[2].lower()
        operator = self.settings.operators.get(domain, domain)
        limiter = self._operator_limiters.get(operator)
        if limiter is None:
            limiter = self._operator_limiters[operator] = _OperatorLimiter(
                self.limiter, lambda: self._connect_permit(operator))
        return limiter

    async def _connect_permit(self, operator: str) -> None:
        """A token of the operator's fleet-wide bucket, right before a handshake starts (Redis down: the worker's
        limiter only)."""
        rate = self.settings.operator_rate
        if rate is None:
            return
        # one waiter per operator and worker asks the shared bucket, for every BAL queued behind it (FIFO):
        # hundreds of BALs waiting for a connection take their tokens in a few round trips, not one each
        self._operator_queue[operator] = self._operator_queue.get(operator, 0) + 1
        try:
            async with self._operator_turn.setdefault(operator, asyncio.Lock()):
                loop = asyncio.get_running_loop()
                tokens, granted_at = self._operator_tokens.get(operator, (0, 0.0))
                if tokens and loop.time() - granted_at > _TOKEN_LIFE:
                    tokens = 0  # granted for waiters that went away (cancelled): too old to start with now
                while not tokens:
                    try:
                        tokens, wait = await self.store.take_connects(
                            operator, rate, self.settings.operator_burst, self._operator_queue[operator])
                    except _REDIS_DOWN:
                        return
                    granted_at = loop.time()
                    if tokens:
                        break
                    self.figures.operator_waits += 1
                    await asyncio.sleep(wait * self._rng.uniform(1.0, 1.0 + self.settings.connect_jitter))
                self._operator_tokens[operator] = (tokens - 1, granted_at)
        finally:
            self._operator_queue[operator] -= 1

    async def _publish(self, watch: _Watch, summary: MessageSummary, x_mss: dict[str, str] | None) -> Published:
        fields = message_fields(watch.spec.address, summary, x_mss)
        lag = None
        if summary.internaldate is not None:  # INTERNALDATE has whole seconds: up to 1 s more than the real lag
            lag = max(0, int((dt.datetime.now(dt.UTC) - summary.internaldate).total_seconds() * 1000))
            self.figures.lag_ms = lag
        address = watch.spec.address
        while True:
            lease = watch.lease
            result = await self._redis(lambda lease=lease: self.store.publish(  # type: ignore[misc]
                lease, summary.uidvalidity or 0, summary.uid, fields, lag_ms=lag))
            if result.status != "stale":
                return result
            # stale: a newer fencing token was issued. If it is this worker's own (its tick took the lapsed lease
            # back while this publication was on its way), publish again under it instead of leaving the BAL.
            held = await self._redis(lambda: self.store.holder(address))
            worker, _, fence = (held or "").rpartition("|")
            if worker != self.id or not fence.isdigit() or int(fence) <= lease.fence:
                return result
            if watch.lease is lease:
                watch.lease = Lease(address, held or "", int(fence))

    async def _end(self, watch: _Watch, kind: str, reason: str) -> None:
        self.figures.failures += kind == "bal-error"
        self.figures.stops[kind] = self.figures.stops.get(kind, 0) + 1
        log.warning("BAL stopped", extra={"worker": self.id, "bal": watch.spec.address, "event": kind,
                                          "reason": reason})
        await self._redis(lambda: self.store.stop(watch.lease, kind, reason,
                                                  {"bal_kind": watch.spec.kind, "worker": self.id}))
        watch.done = True
