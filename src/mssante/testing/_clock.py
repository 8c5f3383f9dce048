"""A clock that only moves when the test says so."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Awaitable
from typing import TypeVar

_T = TypeVar("_T")

__all__ = ["FakeClock"]


class FakeClock:
    """A :class:`mssante.clock.Clock` whose time moves only through :meth:`advance`.

    Tasks that call :meth:`sleep` wait until the test advances the clock past their deadline;
    they are then woken in deadline order, the clock showing each one's deadline as it wakes, so
    code that sleeps and then reads the time sees exactly what it would on a real clock. The
    clock may be read from other threads (e.g. a mock PSC served by uvicorn in a thread).

    Example::

        clock = FakeClock()
        session = psc.open_session(tokens, clock=clock)   # 120 s tokens
        await clock.advance(110)                          # no real waiting
    """

    def __init__(self, start: float = 1_767_225_600.0) -> None:
        """Start at ``start`` seconds since the epoch (default 2026-01-01T00:00:00Z)."""
        self._now = float(start)
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._owners: dict[asyncio.Future[None], asyncio.Task[object] | None] = {}
        self._seq = itertools.count()
        self._new_sleeper: asyncio.Event | None = None

    def now(self) -> float:
        """The clock's current time, in seconds since the epoch."""
        return self._now

    def __call__(self) -> float:
        """The same as :meth:`now`."""
        return self._now

    def __repr__(self) -> str:
        return f"FakeClock(now={self._now!r}, sleepers={self.sleepers})"

    @property
    def sleepers(self) -> int:
        """How many tasks are waiting in :meth:`sleep` (cancelled ones excluded)."""
        return sum(not fut.done() for _, _, fut in self._sleepers)

    async def sleep(self, seconds: float) -> None:
        """Wait until the clock has been advanced by ``seconds``.

        Raises:
            asyncio.CancelledError: the waiting task was cancelled.
        """
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._seq), fut))
        self._owners[fut] = asyncio.current_task()
        if self._new_sleeper is not None:
            self._new_sleeper.set()
        try:
            await fut
        finally:
            self._owners.pop(fut, None)

    async def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``, waking every sleeper whose deadline is reached.

        Each woken task runs until it next blocks before the clock moves on, so a task that
        sleeps in a loop (a backoff, a periodic check) is woken once per period crossed.

        Raises:
            ValueError: ``seconds`` is negative: time does not go back.
        """
        if seconds < 0:
            raise ValueError("a clock does not go back")
        target = self._now + seconds
        while self._sleepers and self._sleepers[0][0] <= target:
            deadline, _, fut = heapq.heappop(self._sleepers)
            if fut.done():
                continue
            self._now = max(self._now, deadline)
            fut.set_result(None)
            await _settle()
        self._now = target
        await _settle()

    async def run(self, awaitable: Awaitable[_T], *, timeout: float = 30.0) -> _T:  # noqa: ASYNC109
        """Await ``awaitable`` while moving time forward whenever something waits on this clock.

        Each time the awaiting task itself sleeps on the clock, time jumps to its deadline (other
        sleepers due before it are woken on the way, in order); while it is busy otherwise
        (network, locks), time stands still, so a background timer never fires in the middle of
        a request. A CIBA wait with a 5 s approval delay so takes milliseconds.

        Raises:
            TimeoutError: not done after ``timeout`` seconds of real time (the work is stuck).
            Exception: whatever ``awaitable`` raises.
        """
        task = asyncio.ensure_future(awaitable)
        try:
            async with asyncio.timeout(timeout):
                while not task.done():
                    mine = [d for d, _, fut in self._sleepers if not fut.done() and self._owners.get(fut) is task]
                    if mine:
                        await self.advance(max(0.0, min(mine) - self._now))
                        continue
                    self._new_sleeper = asyncio.Event()
                    waiter = asyncio.ensure_future(self._new_sleeper.wait())
                    try:
                        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        waiter.cancel()
        except TimeoutError:
            task.cancel()
            raise
        return task.result()

    async def wait_for_sleepers(self, count: int = 1, *, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Wait (in real time, at most ``timeout`` s) until ``count`` tasks are sleeping on this clock.

        Lets a test advance time only once the code under test has reached its wait.

        Raises:
            TimeoutError: fewer than ``count`` sleepers after ``timeout`` seconds.
        """
        async with asyncio.timeout(timeout):
            while self.sleepers < count:
                self._new_sleeper = asyncio.Event()
                await self._new_sleeper.wait()


async def _settle(rounds: int = 5) -> None:
    """Let tasks made ready by a wake-up run to their next suspension point."""
    for _ in range(rounds):
        await asyncio.sleep(0)
