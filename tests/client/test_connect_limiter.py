"""The connect limiter: handshakes paced by a token bucket (GCRA), a bound on those in progress."""

from __future__ import annotations

import asyncio

import pytest

from mssante.client import ConnectLimiter, MailboxOptions
from mssante.errors import UsageError
from mssante.testing import FakeClock


async def test_a_burst_goes_at_once_then_one_token_per_interval() -> None:
    clock = FakeClock(start=0.0)
    limiter = ConnectLimiter(rate=10, burst=3, concurrent=100, clock=clock, sleep=clock.sleep)
    assert [limiter.delay() for _ in range(6)] == pytest.approx([0, 0, 0, 0.1, 0.2, 0.3])
    await clock.advance(1.0)  # the bucket refills: a burst again, no more
    assert [limiter.delay() for _ in range(4)] == pytest.approx([0, 0, 0, 0.1])


async def test_starters_wait_their_turn_on_the_clock() -> None:
    clock = FakeClock(start=0.0)
    limiter = ConnectLimiter(rate=2, burst=1, concurrent=100, clock=clock, sleep=clock.sleep)
    started: list[float] = []

    async def connect() -> None:
        async with limiter.slot():
            started.append(clock.now())

    tasks = [asyncio.create_task(connect()) for _ in range(4)]
    await clock.wait_for_sleepers(3)
    assert started == [0.0]
    await clock.advance(1.5)
    await asyncio.gather(*tasks)
    assert started == [0.0, 0.5, 1.0, 1.5]
    assert limiter.granted == 4


async def test_at_most_concurrent_handshakes_in_progress() -> None:
    limiter = ConnectLimiter(rate=1e9, burst=1000, concurrent=3)
    inside = 0
    most = 0
    release = asyncio.Event()
    three_in = asyncio.Event()

    async def connect() -> None:
        nonlocal inside, most
        async with limiter.slot():
            inside += 1
            most = max(most, inside)
            if inside == 3:
                three_in.set()
            await release.wait()
            inside -= 1

    tasks = [asyncio.create_task(connect()) for _ in range(10)]
    await asyncio.wait_for(three_in.wait(), 10)
    for _ in range(5):  # every other task has had its turn to try
        await asyncio.sleep(0)
    assert inside == 3
    release.set()
    await asyncio.gather(*tasks)
    assert most == 3 and limiter.granted == 10


def test_each_event_loop_has_its_own_bucket_and_slots() -> None:
    limiter = ConnectLimiter(rate=1, burst=1, concurrent=1)

    async def once() -> float:
        async with limiter.slot():
            return limiter.delay()

    # The second loop starts with a full bucket of its own; a semaphore of the first would refuse it.
    asyncio.run(once())
    asyncio.run(once())
    assert limiter.granted == 2


def test_mailboxes_share_one_limiter_by_default() -> None:
    assert MailboxOptions().connect_limiter is MailboxOptions().connect_limiter is not None
    assert MailboxOptions(connect_limiter=None).connect_limiter is None


@pytest.mark.parametrize("args", [(0, 1, 1), (1, 0, 1), (1, 1, 0)])
def test_bad_settings_are_refused(args: tuple[float, int, int]) -> None:
    with pytest.raises(UsageError):
        ConnectLimiter(*args)
