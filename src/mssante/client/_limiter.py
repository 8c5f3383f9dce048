"""Pacing of connection handshakes: a token bucket and a bound on handshakes in progress.

A thousand mailboxes started at the same instant would otherwise open a thousand TCP
connections and TLS handshakes at once: the event loop then misses every deadline (DNS,
connect, STARTTLS) and most of them fail together, only to retry together (issue 14). With a
:class:`ConnectLimiter` they go through at ``rate`` per second (``burst`` back to back), with
at most ``concurrent`` in progress, and all of them connect.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable

from mssante.errors import UsageError

__all__ = ["ConnectLimiter"]


class _LoopState:
    def __init__(self, concurrent: int) -> None:
        self.slots = asyncio.Semaphore(concurrent)
        self.due = 0.0  # GCRA: when the next token is earned ("theoretical arrival time")


class ConnectLimiter:
    """At most ``rate`` handshakes per second on average, ``burst`` back to back, ``concurrent`` at once.

    Shared by every mailbox given it (the default of :class:`~mssante.client.MailboxOptions` is
    one limiter for the whole process; a fleet worker gives its own to every mailbox it
    builds); usable from several event loops (each has its own bucket). The bucket is a GCRA
    (generic cell rate algorithm): no lock, first come first served.

    Args:
        rate: handshakes started per second, on average.
        burst: handshakes that may start back to back.
        concurrent: handshakes in progress at most (connect, STARTTLS, authentication).
        jitter: each handshake also waits a random share of one interval (0 to ``jitter / rate``
            seconds), so that processes restarted together do not knock at the same instant;
            the rate stays strict (the token is taken before the jitter).
        clock: monotonic seconds; sleep: how to wait; rng: the jitter's draws (tests give fakes).

    Raises:
        UsageError: a non-positive rate, burst or concurrency, or a negative jitter.
    """

    def __init__(self, rate: float = 200.0, burst: int = 50, concurrent: int = 64, *, jitter: float = 0.0,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[object]] = asyncio.sleep, rng: random.Random | None = None) -> None:
        if rate <= 0 or burst < 1 or concurrent < 1 or jitter < 0:
            raise UsageError("ConnectLimiter needs rate > 0, burst >= 1, concurrent >= 1 and jitter >= 0")
        self.rate = rate
        self.burst = burst
        self.concurrent = concurrent
        self.jitter = jitter
        self._rng = rng or random.Random()  # noqa: S311 - spreading connections, not cryptography
        self._clock = clock
        self._sleep = sleep
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = weakref.WeakKeyDictionary()
        self.granted = 0

    def __repr__(self) -> str:
        jitter = f", jitter={self.jitter}" if self.jitter else ""
        return f"ConnectLimiter(rate={self.rate}, burst={self.burst}, concurrent={self.concurrent}{jitter})"

    def _state(self) -> _LoopState:
        loop = asyncio.get_running_loop()
        state = self._loops.get(loop)
        if state is None:
            state = self._loops[loop] = _LoopState(self.concurrent)
        return state

    def delay(self) -> float:
        """Take the next token; return how long to wait before using it (0: now).

        Raises:
            RuntimeError: no running event loop.
        """
        state = self._state()
        now = self._clock()
        interval = 1.0 / self.rate
        due = max(state.due, now)
        wait = due - now - (self.burst - 1) * interval
        state.due = due + interval
        return max(0.0, wait)

    def _take(self, state: _LoopState) -> float:
        """Take a token if one is due now (0.0); else how long until one is, taking nothing."""
        now = self._clock()
        interval = 1.0 / self.rate
        due = max(state.due, now)
        wait = due - now - (self.burst - 1) * interval
        if wait > 1e-9:  # not a rounding residue: a clock that does not move would wait for it forever
            return wait
        state.due = due + interval
        return 0.0

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Wait for a token and a free slot; hold the slot for the handshake.

        The token is taken when the handshake actually starts, not reserved ahead: an event loop
        that stalled (a loaded machine) wakes its waiters late, and they must not then start
        back to back, the rate holds on the starts themselves.

        Raises:
            Nothing (cancellation aside).
        """
        state = self._state()
        async with state.slots:
            if self.jitter:
                await self._sleep(self._rng.uniform(0.0, self.jitter / self.rate))
            while (wait := self._take(state)) > 0:
                await self._sleep(wait)
            self.granted += 1
            yield
