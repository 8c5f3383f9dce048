"""A watch's catch-up after a (re)connection: a backlog in bounded ``UID FETCH`` steps, under the caller's
catch-up slot until the first wait (a fleet worker bounds its concurrent catch-ups with it), against the sandbox."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mssante.client import WatchState
from mssante.client._watch import watch_fetching
from tests.client.test_mailbox_support import APP, PER, app_mailbox, raw_message, running_sandbox

pytestmark = pytest.mark.slow


async def test_a_backlog_comes_in_chunks_under_the_catch_up_slot_then_idle_goes_without_it(
        sandbox_state: Path) -> None:
    held = False
    entered = 0
    released = asyncio.Event()

    @contextlib.asynccontextmanager
    async def slot() -> AsyncIterator[None]:
        nonlocal held, entered
        held, entered = True, entered + 1
        try:
            yield
        finally:
            held = False
            released.set()

    async with running_sandbox(sandbox_state) as sb, asyncio.timeout(60):
        backlog = [f"old{i:02d}" for i in range(25)]
        for name in backlog:  # delivered before anyone watched: a BAL added to a fleet, a takeover
            await sb.store.deliver(APP, raw_message(PER, APP, name))
        box = app_mailbox(sb)
        state = WatchState(last_uid=0)
        async with box, contextlib.aclosing(watch_fetching(box, state, catch_up=slot, chunk=10)) as watcher:
            got = []
            for _ in backlog:
                summary, _ = await anext(watcher)
                assert held  # the whole backlog under the slot
                got.append(summary.subject)
            assert got == backlog
            waiting = asyncio.ensure_future(anext(watcher))
            await released.wait()  # a scan found nothing more: the slot is given back before IDLE
            await sb.store.deliver(APP, raw_message(PER, APP, "new"))
            summary, _ = await waiting
            assert summary.subject == "new" and not held  # caught up: an IDLE wake needs no slot
            assert entered == 1
            await sb.faults.end_sessions(APP, "drop")  # a reconnection catches up under the slot again
            await sb.store.deliver(APP, raw_message(PER, APP, "after-drop"))
            summary, _ = await anext(watcher)
            assert summary.subject == "after-drop" and held and entered == 2
    fetches = [c.command for r in sb.journal.records(bal=APP) if r.protocol == "imap" for c in r.commands
               if "UID FETCH" in c.command.upper()]
    # 25 UIDs in steps of 10 at most: 10, 10, 5 (then one per new message)
    sets = [f.split()[3] for f in fetches]
    assert sets == ["1,2,3,4,5,6,7,8,9,10", "11,12,13,14,15,16,17,18,19,20", "21,22,23,24,25", "26", "27"], fetches
