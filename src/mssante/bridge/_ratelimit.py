"""Token-bucket rate limiting, in process memory (each replica counts its own requests)."""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Final

from mssante.bridge._config import RateLimit

__all__ = ["TokenBuckets"]

#: Buckets kept at most; the least recently used are forgotten first (they refill anyway).
MAX_BUCKETS: Final = 100_000


class TokenBuckets:
    """One token bucket per key (installation id, client IP)."""

    def __init__(self, limit: RateLimit, *, clock: Callable[[], float] = time.monotonic) -> None:
        """Apply ``limit`` to every key."""
        self.limit = limit
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, key: str) -> float:
        """Take one token for ``key``; return 0 when allowed, else the seconds to wait."""
        now = self._clock()
        tokens, last = self._buckets.pop(key, (float(self.limit.burst), now))
        tokens = min(float(self.limit.burst), tokens + (now - last) * self.limit.rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            wait = 0.0
        else:
            self._buckets[key] = (tokens, now)
            wait = (1.0 - tokens) / self.limit.rate
        if len(self._buckets) > MAX_BUCKETS:
            self._buckets.popitem(last=False)
        return wait

    def blocked(self, key: str) -> float:
        """Return 0 when ``key`` has a token left, else the seconds to wait; take nothing."""
        entry = self._buckets.get(key)
        if entry is None:
            return 0.0
        tokens = min(float(self.limit.burst), entry[0] + (self._clock() - entry[1]) * self.limit.rate)
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.limit.rate

    @staticmethod
    def retry_after(wait: float) -> str:
        """Format a wait as a ``Retry-After`` value (RFC 9110 §10.2.3: whole seconds)."""
        return str(max(1, math.ceil(wait)))
