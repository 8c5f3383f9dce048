"""One notion of time for the whole toolkit: what time it is, and how to wait.

Everything that reads the time or waits for it (PSC token lifetimes, refresh ahead of expiry,
retry backoff, the session supervisor, the mock PSC) takes a :class:`Clock`. Production code uses
:data:`SYSTEM_CLOCK`; tests give a :class:`mssante.testing.FakeClock` and move time forward
themselves, so a 120 s token lifetime or a 30 s backoff passes instantly and deterministically.

A clock is also callable (``clock()`` is ``clock.now()``), so it can be handed to the places that
only read the time and take a plain ``Callable[[], float]``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol, runtime_checkable

__all__ = ["SYSTEM_CLOCK", "Clock", "SystemClock"]


@runtime_checkable
class Clock(Protocol):
    """Wall-clock time in seconds since the epoch, and a way to wait for it to pass."""

    def now(self) -> float:
        """Seconds since the epoch (token ``exp``/``iat`` are on this scale)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Return once ``seconds`` have passed on this clock (at once when ``seconds <= 0``)."""
        ...

    def __call__(self) -> float:
        """The same as :meth:`now`."""
        ...


class SystemClock:
    """The real clock: :func:`time.time` and :func:`asyncio.sleep`."""

    def now(self) -> float:
        """Seconds since the epoch."""
        return time.time()

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of real time.

        Raises:
            asyncio.CancelledError: the waiting task was cancelled.
        """
        await asyncio.sleep(max(0.0, seconds))

    def __call__(self) -> float:
        """Seconds since the epoch."""
        return time.time()

    def __repr__(self) -> str:
        return "SystemClock()"


#: The clock used wherever none is given.
SYSTEM_CLOCK: Clock = SystemClock()
