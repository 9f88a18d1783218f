"""In-process token buckets: the fail-open fallback when Redis cannot be asked.

Each replica admits at most the plan's rate on its own, so N replicas admit at most N times
the rate while Redis is away; every such admission is logged and counted.
"""

from __future__ import annotations

import time
from collections.abc import Callable

# Bounds memory if Redis stays away while many tenants call; the oldest buckets go first.
_MAX_BUCKETS = 10_000


class LocalBuckets:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        # name -> (tokens, last update); dicts keep insertion order, used for eviction.
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, name: str, capacity: int, rate_per_s: float) -> bool:
        """Take one token from the bucket ``name``; False when it is empty."""
        now = self._clock()
        tokens, updated = self._buckets.pop(name, (float(capacity), now))
        tokens = min(float(capacity), tokens + (now - updated) * rate_per_s)
        admitted = tokens >= 1
        self._buckets[name] = (tokens - 1 if admitted else tokens, now)
        if len(self._buckets) > _MAX_BUCKETS:
            del self._buckets[next(iter(self._buckets))]
        return admitted
