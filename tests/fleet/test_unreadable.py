"""A desired-set entry that is not a BAL description (written by hand or by another program) is reported once and
left out; the fleet's other BALs go on (a review found one such entry stopped every worker: ``UsageError`` out of
``tick``)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from mssante.fleet import FleetStore, Worker
from tests.client.test_mailbox_support import running_sandbox
from tests.fleet._support import APPS, Events, app, connector, fleet_config
from tests.fleet.test_worker import QUICK, deliver, running, until

pytestmark = pytest.mark.slow


async def test_an_unreadable_entry_is_reported_once_and_the_other_bals_go_on(
        tmp_path: Path, store: FleetStore) -> None:
    async with running_sandbox(tmp_path, fleet_config()) as sb, asyncio.timeout(60):
        good, bad, broken = APPS[0], APPS[1], "bad@mss.sandbox.test"
        await store.add(app(good))
        # what a C# program writing the hash itself might leave: a kind in lower case, a value that is not JSON
        await store.redis.hset(store.keys.bals, bad, '{"kind": "app", "ref": "S1"}')
        await store.redis.hset(store.keys.bals, broken, "not json")
        events = Events(store)
        w1, w2 = (Worker(store, connector(sb, tmp_path), settings=QUICK, worker_id=n) for n in ("w1", "w2"))
        async with running(w1), running(w2):
            seen = await events.until(lambda seen: sum(e.kind == "bal-error" for e in seen) == 2)
            errors = {e.bal: e.fields["reason"] for e in seen if e.kind == "bal-error"}
            assert errors.keys() == {bad, broken}
            assert "unknown BAL kind 'app'" in errors[bad] and "is not readable" in errors[broken]
            await until(lambda: good in w1.watches or good in w2.watches)
            await deliver(sb, {good: ["ok"]})
            await events.until(lambda seen: events.messages() == [(good, "ok")])
            # many ticks later, still one event per entry (two workers, each ticking 3 times a second)
            ticks = w1.ticks + w2.ticks
            await until(lambda: w1.ticks + w2.ticks >= ticks + 6)
            # the entry corrected by `add`: watched, and a new bad value is reported again
            await store.add(app(bad))
            await until(lambda: bad in w1.watches or bad in w2.watches)
            async with store.redis.pipeline(transaction=True) as pipe:  # a writer of its own moves the version
                pipe.hset(store.keys.bals, bad, "{}")
                pipe.incr(store.keys.bals_version)
                await pipe.execute()
            await events.until(lambda seen: sum(e.kind == "bal-error" for e in seen) == 3)
        assert sorted(e.bal for e in events.seen if e.kind == "bal-error") == sorted([bad, broken, bad])
        assert w1.figures.failures + w2.figures.failures == 3


async def test_the_desired_set_is_read_again_only_when_its_version_moves_or_it_is_old(store: FleetStore) -> None:
    """A worker ticks three times a second: reading 100,000 entries each time is what the sizing said Redis could
    not serve. The set is read again when add/remove move its version, or after max_age."""

    async def hgetalls() -> int:
        stats = await store.redis.info("commandstats")
        return int(stats.get("cmdstat_hgetall", {}).get("calls", 0))

    await store.add(app(APPS[0]))
    first = await store.bals(max_age=60)
    calls = await hgetalls()
    assert await store.bals(max_age=60) is first and await hgetalls() == calls  # one GET, no HGETALL
    await store.redis.hset(store.keys.bals, APPS[1], app(APPS[1]).to_json())  # a writer that forgot the version
    assert APPS[1] not in await store.bals(max_age=60)
    assert APPS[1] in await store.bals(max_age=0)  # too old: read again
    await store.add(app(APPS[2]))
    assert (await store.bals(max_age=60)).keys() == {APPS[0], APPS[1], APPS[2]}
    await store.remove(APPS[0])
    assert (await store.bals(max_age=60)).keys() == {APPS[1], APPS[2]}
    assert (await store.bals()).keys() == {APPS[1], APPS[2]}  # no max_age: always read
