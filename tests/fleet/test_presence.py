"""The fast failure detector: a worker process that dies is taken over long before its leases expire; a worker
whose presence connection merely dropped cannot publish under its old fencing tokens and joins again cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from mssante.fleet import FleetStore, Worker, WorkerSettings
from mssante.fleet._presence import Presence
from tests.client.test_mailbox_support import running_sandbox
from tests.fleet._support import APPS, Events, app, apps_watched, certificates, connector, fleet_config, until_held
from tests.fleet.conftest import RedisServer
from tests.fleet.test_worker import deliver, running, until

LONG_TTL = 30.0  # the leases outlive every test below: a takeover can only come from the failure detector
FAST = WorkerSettings(capacity=10, lease_ttl=LONG_TTL, connect_rate=50, connect_burst=10, presence_interval=0.05,
                      presence_grace=0.2)


def _client_id(presence: Presence) -> str:
    return presence.registration.partition("|")[0]


async def test_an_eviction_expires_that_workers_leases_only_and_bumps_their_fences(store: FleetStore) -> None:
    one, two = Presence(store, "w1", grace=0.0), Presence(store, "w2", grace=0.0)
    try:
        assert await one.check() == (False, 0) and await two.check() == (False, 0)
        mine = [await store.acquire(a, "w1", 60_000) for a in APPS[:2]]
        theirs = await store.acquire(APPS[2], "w2", 60_000)
        for worker in ("w1", "w2"):
            await store.heartbeat(worker, 60_000, {})
        assert all(mine) and theirs is not None
        # w1's process dies: Redis sees its presence connection close
        assert await store.redis.client_kill_filter(_id=_client_id(one)) == 1
        assert await two.check() == (True, 2)
        assert [await store.holder(a) for a in APPS[:3]] == [None, None, theirs.value]
        assert [int(await store.redis.get(store.keys.fence(a))) for a in APPS[:2]] == [m.fence + 1 for m in mine
                                                                                        if m]
        assert set(await store.workers()) == {"w2"} and set(await store.redis.hkeys(store.keys.presence)) == {"w2"}
        # w1 was only cut off: its old fencing token can never publish again
        assert mine[0] is not None
        stale = await store.publish(mine[0], 7, 1, {"kind": "message", "bal": APPS[0], "subject": "trop tard"})
        assert stale.status == "stale" and await store.events() == []
        # it comes back: it registers again and learns it was evicted
        assert await one.check() == (True, 0) and one.evicted == 1 and two.evictions == 1
        assert await two.check() == (False, 0)  # present again: nothing more to do
    finally:
        await one.aclose(unregister=True)
        await two.aclose(unregister=True)


async def test_a_presence_connection_back_within_the_grace_keeps_its_leases(store: FleetStore) -> None:
    one, two = Presence(store, "w1", grace=3600.0), Presence(store, "w2", grace=3600.0)
    try:
        await one.check()
        await two.check()
        lease = await store.acquire(APPS[0], "w1", 60_000)
        assert lease is not None
        seen = one.registration
        await store.redis.client_kill_filter(_id=_client_id(one))
        assert await two.check() == (False, 0)  # missing, within its grace
        assert await one.check() == (False, 0) and one.registration != seen  # a network blip: back at once
        # a peer that saw the old registration missing decides too late: the script leaves the worker alone
        assert await two.evict("w1", seen) == -1
        assert await store.holder(APPS[0]) == lease.value
        assert int(await store.redis.get(store.keys.fence(APPS[0]))) == lease.fence
        assert await two.check() == (False, 0) and one.evicted == 0
    finally:
        await one.aclose(unregister=True)
        await two.aclose(unregister=True)


async def test_a_clean_stop_unregisters_so_nobody_evicts(store: FleetStore) -> None:
    one, two = Presence(store, "w1", grace=0.0), Presence(store, "w2", grace=0.0)
    await one.check()
    await two.check()
    await one.aclose(unregister=True)
    assert await two.check() == (True, 0) and two.evictions == 0  # gone (its BALs were released): tick now
    await two.aclose(unregister=True)
    assert await store.redis.hkeys(store.keys.presence) == []


async def test_a_killed_worker_process_is_taken_over_long_before_its_lease_ttl(
        tmp_path: Path, redis_server: RedisServer, store: FleetStore) -> None:
    async with running_sandbox(tmp_path, fleet_config()) as sb, asyncio.timeout(120):
        for address in APPS:
            await store.add(app(address))
        dns = f"{sb.info['dns']['host']}:{sb.info['dns']['port']}"
        hosts = [sb.info[p][f]["host"] for p in ("imap", "smtp") for f in ("psc", "authcli")]
        process = subprocess.Popen(  # noqa: ASYNC220 - the worker process killed below
            [sys.executable, "-m", "mssante", "fleet", "worker", "--capacity", "10", "--id", "w-proc",
             "--ca-bundle", sb.info["ca_bundle"], "--certificates", str(certificates(sb, tmp_path / "certs")),
             "--dns", dns, *(f"--resolve={h}=127.0.0.1" for h in hosts), "--lease-ttl", str(LONG_TTL),
             "--redis", redis_server.url], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        events = Events(store)
        try:
            await until_held(store, APPS, lambda h: all(v == "w-proc" for v in h.values()), within=60)
            await deliver(sb, {a: [f"{a}-avant"] for a in APPS})
            await events.until(lambda seen: len(events.messages()) == 4)
            survivor = Worker(store, connector(sb, tmp_path), settings=FAST, worker_id="w1")
            async with running(survivor):
                await until(lambda: survivor.ticks >= 1 and survivor.presence is not None
                            and "w-proc" in survivor.presence._peers)
                process.send_signal(signal.SIGKILL)
                await asyncio.to_thread(process.wait)
                await deliver(sb, {a: [f"{a}-pendant"] for a in APPS})  # nobody watches them now
                # a third of the lease TTL at most: the failure detector, not the TTL, moved them (the leases'
                # holders judge it; the four IMAP logins that follow the takeover are load's, not the detector's)
                await until_held(store, APPS, lambda h: all(v == "w1" for v in h.values()), within=LONG_TTL / 3)
                assert survivor.presence is not None and survivor.presence.evictions == 1
                await events.until(lambda seen: len(events.messages()) == 8, within=LONG_TTL)
                await deliver(sb, {a: [f"{a}-apres"] for a in APPS})
                await events.until(lambda seen: len(events.messages()) == 12)
        finally:
            if process.poll() is None:
                process.kill()
                await asyncio.to_thread(process.wait)
        assert Counter(events.messages()) == Counter(
            (a, f"{a}-{n}") for a in APPS for n in ("avant", "pendant", "apres"))  # none missed, none doubled


async def test_a_worker_cut_off_from_redis_cannot_publish_with_its_old_tokens_and_joins_again(
        tmp_path: Path, store: FleetStore) -> None:
    async with apps_watched(tmp_path, store) as (sb, events, boxes), asyncio.timeout(120):
        # A looks at its presence once (at its start), then only when the test says: its loop sleeps an hour
        cut = Worker(store, boxes, worker_id="wA", settings=WorkerSettings(
            capacity=10, lease_ttl=LONG_TTL, connect_rate=50, connect_burst=10, presence_interval=3600.0))
        peer = Worker(store, boxes, settings=FAST, worker_id="wB")
        async with running(cut):
            await until_held(store, APPS, lambda h: all(v == "wA" for v in h.values()), within=60)
            await deliver(sb, {a: [f"{a}-1"] for a in APPS})
            await events.until(lambda seen: len(events.messages()) == 4)
            old = {a: w.lease for a, w in cut.watches.items()}
            async with running(peer):
                await until(lambda: peer.ticks >= 1 and peer.presence is not None and "wA" in peer.presence._peers)
                assert cut.presence is not None
                await store.redis.client_kill_filter(_id=_client_id(cut.presence))  # A's presence drops
                # B evicts A (fencing tokens bumped) and takes its BALs, while A's IMAP sessions go on
                await until_held(store, APPS, lambda h: all(v == "wB" for v in h.values()), within=LONG_TTL / 3)
                for address, lease in old.items():
                    refused = await store.publish(lease, 1, 99, {"kind": "message", "bal": address, "subject": "x"})
                    assert refused.status == "stale"
                await deliver(sb, {a: [f"{a}-2"] for a in APPS})  # seen by A's sessions and B's: published once
                await events.until(lambda seen: len(events.messages()) == 8)
                # A looks again: it registers, learns it was evicted, and joins the balance like a new worker
                changed, _ = await cut.presence.check()
                assert changed and cut.presence.evicted == 1
                cut._wake.set()
                await until_held(store, APPS, lambda h: Counter(h.values()) == {"wA": 2, "wB": 2},
                                 within=2 * LONG_TTL)
                assert all(cut.watches[a].lease.fence > old[a].fence for a in cut.watches)
                await deliver(sb, {a: [f"{a}-3"] for a in APPS})
                await events.until(lambda seen: len(events.messages()) == 12)
        assert Counter(events.messages()) == Counter((a, f"{a}-{n}") for a in APPS for n in (1, 2, 3))


async def test_a_worker_stops_even_when_a_cancellation_of_its_detector_is_swallowed(store: FleetStore) -> None:
    """A CI run hung 120 s in a worker's stop: the failure detector's loop went on after its cancellation (one
    swallowed below it: Python 3.11's ``wait_for`` drops a cancellation that races a result), and ``run`` waited
    for it. Here the detector's round swallows every cancellation; the worker must still stop."""
    worker = Worker(store, connector=None, settings=FAST, worker_id="w-stop")  # type: ignore[arg-type]  # no BAL
    assert worker.presence is not None
    rounds = 0

    async def swallowing_check() -> tuple[bool, int]:
        nonlocal rounds
        rounds += 1
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(3600)
        return False, 0

    worker.presence.check = swallowing_check  # type: ignore[method-assign]
    task = asyncio.create_task(worker.run())
    await until(lambda: rounds >= 1 and worker.ticks >= 1)
    worker.shutdown()
    await asyncio.wait_for(task, 30)  # far above a detector's round (0.05 s here); forever before the fix


async def test_a_worker_stop_that_hangs_fails_at_the_tests_bound_instead_of_passing_late() -> None:
    """``running`` (tests/fleet/test_worker.py) used to swallow every cancellation of its wait for the worker's end,
    the test's own bound included: a CI run whose worker stop hung (the detector bug above) passed after 122 s against
    a 120-s bound. A stop that never ends must now fail at the bound."""

    class Hung:
        async def run(self) -> None:
            await asyncio.Event().wait()  # its stop never comes: only a cancellation ends it

        def shutdown(self) -> None:
            pass

    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2), running(Hung()):  # type: ignore[arg-type]  # run and shutdown only
            pass
