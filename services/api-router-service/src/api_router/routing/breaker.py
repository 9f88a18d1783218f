"""A circuit breaker per node, kept by each gateway replica on its own.

closed --(``failures`` consecutive failures)--> open --(``open_s`` later)--> half-open;
half-open lets exactly one probe request through: its success closes the breaker, its
failure opens it again for another ``open_s``. An open node is skipped without a network
call. The clock is injected, so the state machine is tested without sleeping.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

BreakerState = Literal["closed", "open", "half_open"]
BREAKER_STATES: tuple[BreakerState, ...] = ("closed", "open", "half_open")


@dataclass(slots=True)
class _Breaker:
    failures: int = 0
    opened_at: float | None = None  # None: closed
    probing: bool = False  # half-open and its one probe is out


class Breakers:
    """The breakers of every node this replica has sent work to."""

    def __init__(
        self, failures: int, open_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._threshold = failures
        self._open_s = open_s
        self._clock = clock
        self._nodes: dict[str, _Breaker] = {}
        # Told (node id, new state) on every transition, for metrics and logs.
        self.on_change: Callable[[str, BreakerState], None] = lambda _node, _state: None

    def state(self, node_id: str) -> BreakerState:
        breaker = self._nodes.get(node_id)
        if breaker is None or breaker.opened_at is None:
            return "closed"
        if self._clock() - breaker.opened_at < self._open_s:
            return "open"
        return "half_open"

    def available(self, node_id: str) -> bool:
        """May the node be planned for? (No side effect: a plan is not an attempt.)"""
        state = self.state(node_id)
        if state == "closed":
            return True
        return state == "half_open" and not self._nodes[node_id].probing

    def unavailable(self) -> set[str]:
        """The nodes ``available`` refuses, at once: a plan checks a set, not each node."""
        return {node_id for node_id in self._nodes if not self.available(node_id)}

    def acquire(self, node_id: str) -> bool:
        """Right before an attempt: True when the node may take it. A half-open node hands
        out its one probe here; every other caller is refused until the probe's verdict."""
        state = self.state(node_id)
        if state == "closed":
            return True
        breaker = self._nodes[node_id]
        if state == "open" or breaker.probing:
            return False
        breaker.probing = True
        self.on_change(node_id, "half_open")
        return True

    def success(self, node_id: str) -> None:
        breaker = self._nodes.get(node_id)
        if breaker is None:
            return
        was_open = breaker.opened_at is not None
        del self._nodes[node_id]  # closed breakers need no memory
        if was_open:
            self.on_change(node_id, "closed")

    def failure(self, node_id: str) -> None:
        breaker = self._nodes.setdefault(node_id, _Breaker())
        if breaker.opened_at is not None:
            if breaker.probing:  # the probe failed: open for another period
                breaker.probing = False
                breaker.opened_at = self._clock()
                self.on_change(node_id, "open")
            return  # a late verdict of an attempt started before the breaker opened
        breaker.failures += 1
        if breaker.failures >= self._threshold:
            breaker.opened_at = self._clock()
            self.on_change(node_id, "open")

    def release(self, node_id: str) -> None:
        """An attempt ended without a verdict on the node (the client left): a probe it
        held goes back, so the next request probes instead."""
        breaker = self._nodes.get(node_id)
        if breaker is not None:
            breaker.probing = False

    def states(self) -> dict[str, BreakerState]:
        """Nodes whose breaker is not plainly closed (closed with failures counts as closed)."""
        return {node_id: self.state(node_id) for node_id in self._nodes}
