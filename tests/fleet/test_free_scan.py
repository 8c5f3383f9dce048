"""A worker one BAL short of its share in a balanced fleet (an uneven division, nothing free) looked for free BALs at
every tick: an MGET over every active BAL it does not hold, ~95,000 keys three times a second at 100,000 BALs. It
looks again only when something can have changed, or after a pause doubled at each empty look; a worker that dies
is still taken over at once."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from mssante.fleet import FleetStore, Worker
from tests.fleet._support import APPS, apps_watched, holders
from tests.fleet.test_worker import QUICK, running, until

pytestmark = pytest.mark.slow

SETTINGS = replace(QUICK, lease_ttl=1.5, presence_grace=0.2)


def looks_at_most(elapsed: float, pause: float, longest: float) -> int:
    """Looks in ``elapsed`` seconds when each pause doubles from ``pause`` up to ``longest``."""
    looks, at = 1, 0.0
    while (at := at + pause) <= elapsed:
        looks, pause = looks + 1, min(2 * pause, longest)
    return looks


async def mgets(store: FleetStore) -> int:
    stats = await store.redis.info("commandstats")
    return int(stats.get("cmdstat_mget", {}).get("calls", 0))


@pytest.mark.parametrize("desired_max_age", [60.0, 1.0])  # 1.0: the desired set read again, unchanged, each second
async def test_a_worker_short_of_its_share_with_nothing_free_looks_rarely_and_still_takes_over_at_once(
        tmp_path: Path, store: FleetStore, desired_max_age: float) -> None:
    settings = replace(SETTINGS, desired_max_age=desired_max_age)
    bals = APPS[:3]
    async with apps_watched(tmp_path, store) as (_sb, _, boxes), asyncio.timeout(90):
        await store.remove(APPS[3])  # 3 BALs, 2 workers: a share of 2, one worker holds 1 with nothing free
        w1, w2 = (Worker(store, boxes, settings=settings, worker_id=n) for n in ("w1", "w2"))
        async with running(w1) as t1, running(w2) as t2:
            await until(lambda: sorted((len(w1.watches), len(w2.watches))) == [1, 2]
                        and all(w.taking is None for w in (*w1.watches.values(), *w2.watches.values()))
                        and w1.connecting_count == w2.connecting_count == 0, within=30)
            held = Counter((await holders(store, bals)).values())
            assert sorted(held.values()) == [1, 2] and None not in held
            short, full = (w1, w2) if len(w1.watches) == 1 else (w2, w1)
            loop = asyncio.get_running_loop()
            calls, ticks, start = await mgets(store), short.ticks, loop.time()
            await until(lambda: short.ticks >= ticks + 16, within=40)
            looks, elapsed = await mgets(store) - calls, loop.time() - start
            # before: one MGET per tick of the short worker (16 here). Now: a look at most after each pause, one
            # tick doubled each time up to desired_max_age, and one more at the start
            pause = settings.lease_ttl / 3
            assert looks <= 1 + looks_at_most(elapsed, pause, max(pause, desired_max_age)), (looks, elapsed)
            assert sorted((len(w1.watches), len(w2.watches))) == [1, 2]  # nothing moved meanwhile
            # the full worker dies (a crash: cancelled, its presence connection closed) while the short worker's
            # next look is several ticks away (10 with the longer pauses): taken over at once all the same
            await until(lambda: short._look_again_at - loop.time() >= min(5.0, desired_max_age / 2), within=30)
            ticks = short.ticks
            (t1 if full is w1 else t2).cancel()
            await until(lambda: len(short.watches) == 3 and short.connecting_count == 0, within=30)
            assert short.ticks - ticks <= 5, short.ticks - ticks
            assert set((await holders(store, bals)).values()) == {short.id}
