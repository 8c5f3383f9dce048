"""A BAL taken by handover enters IDLE only once its previous session is closed.

Dovecot 2.3 with ``client_limit`` > 1 watches a mailbox once per imap process for all its sessions and stops
watching it when one of them closes: the taker's session, in IDLE before the old one logged out, was told of
nothing more until the mailbox's check interval (measured: 29.6 s for the second of two sessions, the first closed;
p99 27 s in a benchmark run with handovers). The order is checked here on the sandbox's journal, and the delivery
time on Dovecot."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from mssante.fleet import FleetStore, Worker
from tests.fleet._support import APPS, apps_watched, until_held
from tests.fleet.test_handover import HANDOVER, at_the_gate, gated_pair, holding_all, settled
from tests.fleet.test_worker import deliver, running, until

pytestmark = pytest.mark.slow


class Watched(Worker):
    """A worker noting when each BAL it took by handover was let into IDLE (the moment ``_may_idle`` said yes)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.idle_from: dict[str, float] = {}

    async def _may_idle(self, watch: Any) -> bool:
        waiting = watch.idle_after is not None
        ready = await super()._may_idle(watch)
        if ready and waiting:
            self.idle_from.setdefault(watch.spec.address, time.time())
        return ready


async def test_the_takers_idle_starts_after_the_old_session_ended(tmp_path: Path, store: FleetStore) -> None:
    async with apps_watched(tmp_path, store) as (sb, events, boxes), asyncio.timeout(120):
        w1, taker, _, sessions = gated_pair(sb, store, boxes)
        w2 = Watched(taker, boxes, settings=HANDOVER, worker_id="w2")
        async with running(w1):
            await holding_all(w1, sessions)
            async with running(w2):
                moved = await at_the_gate(taker, sessions)
                taker.gate.set()
                await until_held(store, APPS, lambda h: Counter(h.values()) == {"w1": 2, "w2": 2})
                await until(lambda: w2.figures.handovers_in == 2 and settled(w2) and len(w2.idle_from) == 2)
                await deliver(sb, {a: [f"{a}-apres"] for a in moved})
                await events.until(lambda seen: len(events.messages()) == 2)
                ended = {}
                for address in moved:
                    imap = sorted((r for r in sb.journal.records(bal=address) if r.protocol == "imap"),
                                  key=lambda r: r.started_at)
                    new = imap[-1]  # w2's session; w1's was open when it started (make-before-break)
                    (old,) = [r for r in imap[:-1] if r.ended_at is None or r.ended_at > new.started_at]
                    assert old.ended_at is not None  # closed at once: w1 was told by the transfer
                    ended[address] = old.ended_at
        assert sorted(events.messages()) == [(a, f"{a}-apres") for a in moved]
        for address in moved:  # the taker's IDLE began after the old session's end, never before
            assert w2.idle_from[address] >= ended[address], (address, w2.idle_from[address], ended[address])
        assert w1.figures.handovers_out == 2
