"""A worker's stop is bounded even when a watch does not end when cancelled: a CI run showed a stopping worker
waiting 2 minutes for a watch still in IDLE, its cancellation swallowed below it (its IDLE renewal is 29 min)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from mssante.fleet import FleetStore, Worker
from tests.fleet._support import APPS, apps_watched
from tests.fleet.test_worker import QUICK, until

pytestmark = pytest.mark.slow


class Swallowing(Worker):
    """A worker whose watches swallow their first cancellation and watch on (what an await racing its own result
    does to a cancellation in Python 3.11)."""

    async def _watch(self, watch: Any) -> None:
        try:
            await super()._watch(watch)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            assert task is not None
            task.uncancel()
            watch.done = False
            await super()._watch(watch)  # a new session, in IDLE until the IDLE renewal


async def test_a_stop_aborts_the_sessions_of_watches_that_do_not_end_when_cancelled(
        tmp_path: Path, store: FleetStore) -> None:
    async with apps_watched(tmp_path, store) as (sb, _, boxes), asyncio.timeout(60):
        worker = Swallowing(store, boxes, settings=QUICK)
        task = asyncio.create_task(worker.run())
        await until(lambda: all(len(sb.faults.sessions(a)) == 1 for a in APPS))
        started = time.monotonic()
        task.cancel()  # a crash: the watches are cancelled; each swallows it and opens a new session
        await asyncio.gather(task, return_exceptions=True)
        took = time.monotonic() - started
        await until(lambda: not any(sb.faults.sessions(a) for a in APPS))  # every session gone
    assert took < 30, took  # aborted after the stop's grace (5 s), not after the IDLE renewal (29 min)
