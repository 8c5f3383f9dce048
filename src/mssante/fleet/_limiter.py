"""A connect limiter: a token bucket with jitter, so a fleet restarting does not stampede the operator."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable

from mssante.errors import UsageError

__all__ = ["ConnectLimiter"]


class ConnectLimiter:
    """At most ``rate`` connections per second on average, ``burst`` at once, each start jittered.

    Args:
        rate: tokens added per second.
        burst: bucket size (connections allowed back to back).
        jitter: each waiter first sleeps a random share of one interval (0..jitter/rate s), so
            workers started together spread their connections; the rate itself stays strict.
        clock: monotonic time source (tests).

    Raises:
        UsageError: a non-positive rate or burst, or a negative jitter.
    """

    def __init__(self, rate: float, burst: int = 1, *, jitter: float = 0.5,
                 clock: Callable[[], float] = time.monotonic, rng: random.Random | None = None) -> None:
        if rate <= 0 or burst < 1 or jitter < 0:
            raise UsageError("the connect limiter needs rate > 0, burst >= 1 and jitter >= 0")
        self.rate = rate
        self.burst = burst
        self.jitter = jitter
        self._clock = clock
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._tokens = float(burst)
        self._stamp = clock()
        self._lock = asyncio.Lock()
        self.granted = 0

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    async def acquire(self) -> None:
        """Wait for the right to open one connection.

        Raises:
            Nothing (cancellation aside).
        """
        if self.jitter:
            await asyncio.sleep(self._rng.uniform(0, self.jitter / self.rate))
        async with self._lock:  # first come, first served
            self._refill()
            while self._tokens < 1:
                await asyncio.sleep((1 - self._tokens) / self.rate)
                self._refill()
            self._tokens -= 1
            self.granted += 1
