"""The Clock protocol and the FakeClock tests drive time with."""

from __future__ import annotations

import asyncio
import time

import pytest

from mssante.clock import SYSTEM_CLOCK, Clock
from mssante.testing import FakeClock


def test_both_clocks_are_clocks_and_callable() -> None:
    fake = FakeClock(start=100.0)
    assert isinstance(SYSTEM_CLOCK, Clock) and isinstance(fake, Clock)
    assert fake() == fake.now() == 100.0
    assert abs(SYSTEM_CLOCK() - time.time()) < 5


async def test_advance_wakes_sleepers_in_deadline_order_at_their_deadline() -> None:
    clock = FakeClock(start=0.0)
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append((name, clock.now()))

    tasks = [asyncio.create_task(sleeper(n, s)) for n, s in (("c", 3), ("a", 1), ("b", 2))]
    await clock.wait_for_sleepers(3)
    await clock.advance(1.5)
    assert woke == [("a", 1.0)] and clock.now() == 1.5
    await clock.advance(10)
    assert woke == [("a", 1.0), ("b", 2.0), ("c", 3.0)] and clock.now() == 11.5
    await asyncio.gather(*tasks)


async def test_a_periodic_sleeper_wakes_once_per_period_crossed() -> None:
    clock = FakeClock(start=0.0)
    ticks: list[float] = []

    async def every_second() -> None:
        while True:
            await clock.sleep(1)
            ticks.append(clock.now())

    task = asyncio.create_task(every_second())
    await clock.wait_for_sleepers()
    await clock.advance(3.5)
    assert ticks == [1.0, 2.0, 3.0]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert clock.sleepers == 0


async def test_run_jumps_only_while_the_awaited_task_sleeps() -> None:
    clock = FakeClock(start=0.0)
    background: list[float] = []

    async def far_timer() -> None:
        await clock.sleep(1000)
        background.append(clock.now())

    async def work() -> float:
        await clock.sleep(5)
        await asyncio.sleep(0.01)  # busy with something else: the clock must not jump meanwhile
        await clock.sleep(5)
        return clock.now()

    timer = asyncio.create_task(far_timer())
    await clock.wait_for_sleepers()
    assert await clock.run(work()) == 10.0
    assert background == []  # the far timer was never reached
    timer.cancel()


async def test_time_does_not_go_back_and_zero_sleep_returns() -> None:
    clock = FakeClock()
    with pytest.raises(ValueError, match="back"):
        await clock.advance(-1)
    await clock.sleep(0)
    await SYSTEM_CLOCK.sleep(0)
