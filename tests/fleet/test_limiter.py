"""One connect limiter, the client's: a worker's jittered bucket paces every connection of its mailboxes."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from mssante.client import ConnectLimiter, MailboxOptions
from mssante.discovery import ManualServers
from mssante.errors import UsageError
from mssante.fleet import BALSpec, FleetStore, MailboxConnector, Worker, WorkerSettings
from mssante.sandbox.config import default_config
from mssante.sandbox.pki import TestPKI
from mssante.testing import FakeClock
from tests.client.test_mailbox_support import running_sandbox
from tests.fleet._support import APPS, app, connector, fleet_config
from tests.fleet.conftest import RedisServer
from tests.fleet.test_worker import running, until


@pytest.mark.parametrize("jitter", [0.0, 0.5])
async def test_jitter_spreads_the_starts_but_never_exceeds_burst_plus_rate(jitter: float) -> None:
    clock = FakeClock(start=0.0)
    limiter = ConnectLimiter(rate=100, burst=5, concurrent=1000, jitter=jitter, clock=clock, sleep=clock.sleep,
                             rng=random.Random(7))
    started: list[float] = []

    async def connect() -> None:
        async with limiter.slot():
            started.append(clock.now())

    tasks = [asyncio.create_task(connect()) for _ in range(40)]
    await clock.wait_for_sleepers(40 if jitter else 35)
    await clock.advance(1.0)
    await asyncio.gather(*tasks)
    assert limiter.granted == 40
    # n starts take at least (n - burst) / rate seconds, jitter or not; jitter adds at most jitter / rate
    for n, at in enumerate(sorted(started), start=1):
        assert (n - 5) / 100 - 1e-9 <= at <= max(0, n - 5) / 100 + jitter / 100 + 1e-9
    if jitter:
        assert len(set(started[:5])) == 5  # the burst itself is spread, not five starts at one instant


def test_bad_settings_are_refused() -> None:
    with pytest.raises(UsageError):
        ConnectLimiter(rate=1, jitter=-1)
    for settings in ({"connect_rate": 0}, {"connect_burst": 0}, {"connect_jitter": -1}, {"connect_concurrent": 0}):
        with pytest.raises(UsageError):
            WorkerSettings(**settings)  # type: ignore[arg-type]


async def test_every_mailbox_of_a_worker_uses_the_worker_limiter(tmp_path: Path) -> None:
    """The worker gives its limiter to the connector: first connections and reconnections of all its BALs
    go through that one bucket (not the process-wide default of MailboxOptions)."""
    pki = TestPKI.load_or_create(tmp_path / "pki", server_names=default_config().server_names,
                                 crl_base_url="http://127.0.0.1:9")
    bal = pki.issue_client_cert(default_config().structures[0], "DPI")
    (tmp_path / "s1.pem").symlink_to(bal.cert_path)
    (tmp_path / "s1.key").symlink_to(bal.key_path)
    connector = MailboxConnector(tls=pki_trust(pki), certificates=tmp_path, options=MailboxOptions(poll_interval=7))
    worker = Worker(FleetStore.from_url("redis://127.0.0.1:9"), connector,
                    settings=WorkerSettings(connect_rate=3, connect_burst=2, connect_jitter=0.25))
    assert (worker.limiter.rate, worker.limiter.burst, worker.limiter.jitter) == (3, 2, 0.25)
    boxes = [await connector.mailbox(BALSpec(address=f"svc{i}@mss.sandbox.test", kind="APP", ref="s1"),
                                     limiter=worker.limiter) for i in range(3)]
    assert all(b.options.connect_limiter is worker.limiter for b in boxes)
    assert all(b.options.poll_interval == 7 for b in boxes)  # the connector's other options kept
    assert len({id(b.options) for b in boxes}) == 1  # one options object for the worker, not one per BAL
    alone = await connector.mailbox(BALSpec(address="svc9@mss.sandbox.test", kind="APP", ref="s1"))
    assert alone.options is connector.options
    await worker.store.aclose()


def pki_trust(pki: TestPKI) -> object:
    from mssante.client import TrustSettings

    return TrustSettings(ca_bundle=pki.ca_bundle_path)


@contextlib.asynccontextmanager
async def mute_operator(tmp_path: Path) -> AsyncIterator[MailboxConnector]:
    """A connector of BAL APP (structure ``s1``) toward a server that accepts and never greets (a stalled
    operator, a starved machine): every watch stays connecting."""
    pki = TestPKI.load_or_create(tmp_path / "pki", server_names=default_config().server_names,
                                 crl_base_url="http://127.0.0.1:9")
    bal = pki.issue_client_cert(default_config().structures[0], "DPI")
    (tmp_path / "s1.pem").symlink_to(bal.cert_path)
    (tmp_path / "s1.key").symlink_to(bal.key_path)
    accepted: list[asyncio.StreamWriter] = []

    async def mute(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)  # never a greeting

    server = await asyncio.start_server(mute, "127.0.0.1", 0)
    try:
        yield MailboxConnector(tls=pki_trust(pki), certificates=tmp_path,  # type: ignore[arg-type]
                               servers=ManualServers(imap=("127.0.0.1", server.sockets[0].getsockname()[1])))
    finally:
        server.close()
        for writer in accepted:
            writer.close()
        await server.wait_closed()


async def test_a_worker_that_cannot_connect_does_not_pile_up_leases(tmp_path: Path, store: FleetStore) -> None:
    """A server that accepts and never greets: the worker claims no more than one tick's connect budget, not a
    budget more every tick, so the leases it holds stay few enough to renew and the other workers can take the
    rest."""
    for i in range(20):
        await store.add(BALSpec(address=f"svc{i}@mss.sandbox.test", kind="APP", ref="s1"))
    settings = WorkerSettings(connect_rate=1, connect_burst=2, connect_jitter=0, lease_ttl=3, operator_rate=None)
    async with mute_operator(tmp_path) as connector:
        worker = Worker(store, connector, settings=settings)  # a tick's budget: 2 + 1 x 3 / 3 = 3 BALs
        try:
            for _ in range(5):
                await worker.tick()
            assert len(worker.watches) == 3  # before: 3 more every tick (12 after 5 ticks), none connected
        finally:
            await worker._stop_watches(list(worker.watches), release=True, wait=True)


async def test_a_kill_while_the_newest_worker_still_connects_leaves_no_bal_stranded(
        tmp_path: Path, store: FleetStore) -> None:
    """Three workers; the newest still connects its share (its budget spent) when another dies. The dead
    worker's BALs beyond what the newest can take must not wait for it to finish connecting: the worker at its
    share takes them at its next tick (before: they stayed unleased until the newest had budget again, the
    6.8 s takeover of a benchmark run). Only the dead worker's: BALs released for a joiner are its share."""
    bals = [f"svc{i}@mss.sandbox.test" for i in range(30)]
    for address in bals:
        await store.add(BALSpec(address=address, kind="APP", ref="s1"))
    common: dict[str, Any] = {"connect_jitter": 0, "lease_ttl": 30, "operator_rate": None, "presence_interval": None}
    async with mute_operator(tmp_path) as connector:
        steady = Worker(store, connector, worker_id="steady",
                        settings=WorkerSettings(connect_rate=3, connect_burst=20, **common))  # budget 50 a tick
        newest = Worker(store, connector, worker_id="newest",
                        settings=WorkerSettings(connect_rate=0.1, connect_burst=3, **common))  # budget 4 a tick
        try:
            doomed = await store.acquire_many(bals[:10], "doomed", 30_000)  # the worker about to die
            await store.heartbeat("doomed", 30_000, {})
            for worker in (steady, newest, steady, newest):
                await worker.tick()
            assert (len(steady.watches), len(newest.watches)) == (10, 4)  # the newest: its budget, still connecting
            before = set(steady.watches)
            # "doomed" dies: its leases go (the failure detector, or the TTL) and so does its heartbeat
            await store.redis.delete(*(store.keys.lease(lease.address) for lease in doomed if lease))
            await store.redis.zrem(store.keys.workers, "doomed")
            for worker in (steady, newest, steady, newest, steady):
                await worker.tick()
            holders = [await store.holder(lease.address) for lease in doomed if lease]
            assert all(holders), f"{holders.count(None)} of the dead worker's BALs left unwatched"
            assert len(newest.watches) == 4  # the newest took nothing it could not connect
            # the BALs that were the newest's share and not yet taken stay for it (no second move later): beyond
            # the dead worker's, the steady worker took only what filled its own share (15, from 10)
            assert len(set(steady.watches) - before - {lease.address for lease in doomed if lease}) <= 5
        finally:
            for worker in (steady, newest):
                await worker._stop_watches(list(worker.watches), release=True, wait=True)


async def test_leases_that_lapsed_in_a_late_tick_are_taken_back_with_the_watches_kept(tmp_path: Path,
                                                                                       store: FleetStore) -> None:
    """A worker starved of CPU past its lease TTL: its next tick takes the lapsed leases back (new fencing
    tokens) without stopping the watches, unless another worker took them meanwhile."""
    for i in range(3):
        await store.add(BALSpec(address=f"svc{i}@mss.sandbox.test", kind="APP", ref="s1"))
    async with mute_operator(tmp_path) as connector:
        worker = Worker(store, connector, settings=WorkerSettings(connect_jitter=0, lease_ttl=3, operator_rate=None))
        try:
            await worker.tick()
            await worker.tick()
            watches = dict(worker.watches)
            assert len(watches) == 3
            fences = {a: w.lease.fence for a, w in watches.items()}
            await store.redis.delete(*(store.keys.lease(a) for a in watches))  # the TTL ran out
            stolen = await store.acquire("svc0@mss.sandbox.test", "another", 3000)  # one taken meanwhile
            assert stolen is not None
            await worker.tick()
            assert set(worker.watches) == {"svc1@mss.sandbox.test", "svc2@mss.sandbox.test"}
            assert all(worker.watches[a] is watches[a] and worker.watches[a].lease.fence > fences[a]
                       for a in worker.watches)  # the same watches, new fencing tokens
            assert await store.holder("svc0@mss.sandbox.test") == stolen.value
        finally:
            await worker._stop_watches(list(worker.watches), release=True, wait=True)


async def test_a_publication_that_crossed_its_own_lease_renewal_is_not_lost(store: FleetStore) -> None:
    """The tick took a lapsed lease back (new fencing token) while a publication under the old token was on its
    way: the script refuses it as stale, and the worker publishes again under its new token instead of leaving
    the BAL unwatched until someone claims it again (about ten seconds on a loaded machine)."""
    from mssante.client import MessageSummary
    from mssante.fleet._worker import _Watch

    spec = BALSpec(address="svc0@mss.sandbox.test", kind="APP", ref="s1")
    worker = Worker(store, MailboxConnector(tls=None), worker_id="w1")  # type: ignore[arg-type]
    old = await store.acquire(spec.address, worker.id, 3000)
    assert old is not None
    await store.redis.delete(store.keys.lease(spec.address))  # the TTL ran out...
    new = await store.acquire(spec.address, worker.id, 3000)  # ...and the tick took it back
    assert new is not None and new.fence == old.fence + 1
    watch = _Watch(spec, old)  # the watch has not seen the new lease yet
    summary = MessageSummary(folder="INBOX", uid=5, uidvalidity=9, subject="CR")
    assert (await worker._publish(watch, summary, None)).status == "published"
    assert watch.lease.fence == new.fence
    await store.redis.delete(store.keys.lease(spec.address))
    assert await store.acquire(spec.address, "another", 3000) is not None  # another worker has it: stale stays
    assert (await worker._publish(watch, MessageSummary(folder="INBOX", uid=6, uidvalidity=9), None)).status == "stale"


async def test_waiters_woken_late_by_a_stalled_loop_do_not_start_back_to_back() -> None:
    """The event loop stalls (a loaded machine) while handshakes wait for their turn: when it runs again, the
    waiters must still start one interval apart. A token reserved ahead let them all start at once after the
    stall (141 starts in one second against a limit of 120 in a benchmark run).

    Time is the test's: every waiter looks at the clock at each turn of the loop, the test moves it 1 ms a turn,
    and once 300 ms at once (the stall: every waiter's time has come when they run again)."""
    now = 0.0

    async def turn(_: float) -> None:
        await asyncio.sleep(0)  # wait one turn of the loop; the test moves the clock

    limiter = ConnectLimiter(rate=50, burst=1, concurrent=100, clock=lambda: now, sleep=turn)  # a start every 20 ms
    starts: list[float] = []

    async def connect() -> None:
        async with limiter.slot():
            starts.append(now)

    tasks = [asyncio.create_task(connect()) for _ in range(8)]
    for _ in range(3):
        await asyncio.sleep(0)  # every waiter is in the bucket, the first one started
    now += 0.3  # the stall
    async with asyncio.timeout(30):
        while not all(t.done() for t in tasks):
            await asyncio.sleep(0)
            now += 0.001
    assert len(starts) == 8
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert min(gaps) >= 0.02 - 1e-9, gaps  # the rate holds on the starts themselves


class CountingStore(FleetStore):
    """The fleet's store on a real Redis, counting the tokens its operator buckets grant."""

    granted = 0

    async def take_connects(self, operator: str, rate: float, burst: int, want: int) -> tuple[int, float]:
        granted, wait = await super().take_connects(operator, rate, burst, want)
        self.granted += granted
        return granted, wait


async def test_a_reconnection_takes_its_token_from_the_operators_fleet_wide_bucket(
        tmp_path: Path, redis_server: RedisServer) -> None:
    """Every (re)connection of a worker toward an operator goes through the fleet-wide bucket: before, only a
    BAL's first connection did, so an operator restart (every session dropped, every BAL reconnecting) went past
    the fleet's limit, each worker held back by its own limiter only."""
    store = CountingStore.from_url(redis_server.url)
    assert isinstance(store, CountingStore)
    async with running_sandbox(tmp_path, fleet_config()) as sb, asyncio.timeout(60):
        await store.add(app(APPS[0]))
        worker = Worker(store, connector(sb, tmp_path), settings=WorkerSettings(
            lease_ttl=30, connect_rate=50, operator_rate=5, operator_burst=1))
        async with running(worker):
            await until(lambda: len(sb.faults.sessions(APPS[0])) == 1)
            assert store.granted == 1
            await sb.faults.end_sessions(APPS[0], "drop")  # the operator drops the session: the watch reconnects
            await until(lambda: len(sb.faults.sessions(APPS[0])) == 1 and worker.watches[APPS[0]].state is not None
                        and worker.watches[APPS[0]].state.reconnects == 1)
            assert store.granted == 2  # before: 1, the reconnection asked the worker's limiter only
    await store.aclose()


class GrantTimes(FleetStore):
    """The fleet's store on a real Redis, noting when its operator buckets grant tokens (loop time)."""

    grants: list[float]  # set by the test

    async def take_connects(self, operator: str, rate: float, burst: int, want: int) -> tuple[int, float]:
        granted, wait = await super().take_connects(operator, rate, burst, want)
        self.grants.extend([asyncio.get_running_loop().time()] * granted)
        return granted, wait


async def test_a_fleet_wide_token_is_spent_at_once_not_after_the_workers_own_pacing(
        tmp_path: Path, redis_server: RedisServer) -> None:
    """The fleet-wide bucket bounds handshake *starts* only if each start follows its grant at once. Taken before
    the worker's own pacing, tokens waited there: a start up to a second after its grant, so a second of starts
    held tokens of two seconds of grants (127 handshakes in one second against a fleet-wide 120 in a benchmark
    run). Here the worker paces 4 starts per second and the operator's bucket would give all at once: each start
    must still come right after a grant of its own."""
    store = GrantTimes.from_url(redis_server.url)
    assert isinstance(store, GrantTimes)
    store.grants = []
    starts: list[float] = []

    class Timed(Worker):
        def _limiter_for(self, spec: BALSpec) -> ConnectLimiter:
            limiter = super()._limiter_for(spec)
            if not getattr(limiter, "timed", False):
                slot = limiter.slot

                @contextlib.asynccontextmanager
                async def timed() -> AsyncIterator[None]:
                    async with slot():
                        starts.append(asyncio.get_running_loop().time())
                        yield

                limiter.slot = timed  # type: ignore[method-assign]
                limiter.timed = True  # type: ignore[attr-defined]
            return limiter

    async with running_sandbox(tmp_path, fleet_config()) as sb, asyncio.timeout(60):
        for address in APPS[:4]:
            await store.add(app(address))
        worker = Timed(store, connector(sb, tmp_path), settings=WorkerSettings(
            lease_ttl=30, connect_rate=4, connect_burst=1, connect_jitter=0, operator_rate=100, operator_burst=10))
        async with running(worker):
            await until(lambda: all(len(sb.faults.sessions(a)) == 1 for a in APPS[:4]))
    await store.aclose()
    assert len(starts) == 4 and len(store.grants) == 4
    # each start within a few loop turns of its own grant (before: 0.25, 0.5 and 0.75 s after)
    assert max(s - g for s, g in zip(sorted(starts), sorted(store.grants), strict=True)) < 0.1
