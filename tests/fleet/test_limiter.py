"""The connect limiter: never more than the burst plus the rate in any window, whatever the load."""

from __future__ import annotations

import asyncio
import random

import pytest

from mssante.errors import UsageError
from mssante.fleet import ConnectLimiter


@pytest.mark.parametrize("jitter", [0.0, 0.5])
async def test_grants_never_exceed_burst_plus_rate(jitter: float) -> None:
    loop = asyncio.get_running_loop()
    limiter = ConnectLimiter(rate=100, burst=5, jitter=jitter, rng=random.Random(7))
    times: list[float] = []

    async def connect() -> None:
        await limiter.acquire()
        times.append(loop.time())

    started = loop.time()
    async with asyncio.timeout(10):
        await asyncio.gather(*(connect() for _ in range(40)))
    assert limiter.granted == 40
    # n grants take at least (n - burst) / rate seconds (a lower bound: load only slows it down)
    for n, at in enumerate(sorted(times), start=1):
        assert at - started >= (n - 5) / 100 - 1e-6


def test_bad_settings_are_refused() -> None:
    for kwargs in ({"rate": 0}, {"rate": 1, "burst": 0}, {"rate": 1, "jitter": -1}):
        with pytest.raises(UsageError):
            ConnectLimiter(**kwargs)  # type: ignore[arg-type]
