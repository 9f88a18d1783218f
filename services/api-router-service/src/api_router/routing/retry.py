"""When a failed attempt may be retried: full-jitter backoff inside the request's deadline,
and a per-replica retry budget so that a sick cluster is not flooded with retries."""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from api_router.config.settings import RoutingSettings


def backoff_s(retry: int, base_s: float, cap_s: float, rng: random.Random) -> float:
    """Full jitter (AWS architecture blog, "Exponential Backoff and Jitter"): uniform in
    ``[0, min(cap, base * 2^retry)]`` for the ``retry``-th retry (1, 2, ...)."""
    return rng.uniform(0.0, min(cap_s, base_s * 2.0**retry))


def retry_delay_s(
    retry: int, settings: RoutingSettings, time_left_s: float, rng: random.Random
) -> float | None:
    """The pause before the ``retry``-th retry, or None when it would not end before the
    deadline (then there is no time for another attempt)."""
    delay = backoff_s(retry, settings.backoff_base_s, settings.backoff_cap_s, rng)
    return delay if delay < time_left_s else None


class RetryBudget:
    """Retries may not exceed ``ratio`` of the requests seen over a sliding window (plus a
    small floor of ``min_retries`` per window). Counted in one-second buckets, so memory
    and cost stay constant whatever the request rate."""

    def __init__(
        self,
        ratio: float,
        window_s: int,
        min_retries: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ratio = ratio
        self._window = window_s
        self._min = min_retries
        self._clock = clock
        self._requests = [0] * window_s
        self._retries = [0] * window_s
        self._second = int(clock())
        self.rejected = 0  # retries refused, for metrics

    def record_request(self) -> None:
        self._requests[self._advance()] += 1

    def try_spend(self) -> bool:
        """Take one retry from the budget; False (and counted) when it is spent."""
        slot = self._advance()
        if sum(self._retries) + 1 > max(self._min, self._ratio * sum(self._requests)):
            self.rejected += 1
            return False
        self._retries[slot] += 1
        return True

    def _advance(self) -> int:
        """The current second's bucket, after emptying those that left the window."""
        now = int(self._clock())
        stale = min(now - self._second, self._window)
        for step in range(1, stale + 1):
            old = (self._second + step) % self._window
            self._requests[old] = 0
            self._retries[old] = 0
        self._second = max(now, self._second)
        return self._second % self._window
