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
            await store.redis.hset(store.keys.bals, bad, "{}")
            await events.until(lambda seen: sum(e.kind == "bal-error" for e in seen) == 3)
        assert sorted(e.bal for e in events.seen if e.kind == "bal-error") == sorted([bad, broken, bad])
        assert w1.figures.failures + w2.figures.failures == 3
