"""Takes an accepted attempt for lost once its worker can no longer answer it.

After ``accepted``, an attempt is lost when

- its worker has sent nothing for ``dispatch.idle_timeout_s`` although it promised an
  event at least every ``KEEPALIVE_S`` (workers do, for whole answers as for streams,
  and say so in ``accepted``), or
- its node's health entry went stale (no beat for ``health.fresh_s``) or left the
  registry. A drained or stopping worker still beats (``available: false``) and answers
  its jobs itself, so it is not lost.

The same loop hands the states to the direct transport, whose calls to a node that
stopped answering its probes are lost too (``HttpTransport.check_lost``).

One loop per replica looks at every waiting attempt twice a second, instead of a timer
per request. A lost attempt's wait is interrupted with :func:`attempt_lost`; the
dispatcher (whole answers) or the relay (streams) then cancels the job, so a worker that
comes back drops it, and fails over when nothing has reached the client.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping

from api_router.dispatch.attempt_failure import attempt_lost
from api_router.dispatch.reply_reader import ReplyWaiter
from api_router.routing.snapshot import NodeState, RoutingSnapshot

log = logging.getLogger(__name__)

_TICK_S = 0.5


class AttemptWatch:
    def __init__(
        self,
        waiting: Callable[[], Iterable[ReplyWaiter]],
        snapshot: Callable[[], RoutingSnapshot],
        clock: Callable[[], float] = time.monotonic,
        direct: Callable[[Mapping[str, NodeState]], int] | None = None,
    ) -> None:
        """``waiting``: the attempts waiting now (``ReplyReader.waiting``); ``snapshot``:
        the current health snapshot; ``direct``: interrupts the lost calls to direct
        nodes, by their states (``HttpTransport.check_lost``)."""
        self._waiting = waiting
        self._snapshot = snapshot
        self._clock = clock
        self._direct = direct

    async def run(self) -> None:
        while True:
            await asyncio.sleep(_TICK_S)
            self.check()

    def check(self) -> int:
        """Interrupt the attempts that are lost now; how many there were."""
        now = self._clock()
        states = self._snapshot().states
        lost = 0
        for waiter in self._waiting():
            if not waiter.watched or waiter.interrupted:
                continue
            why = _why_lost(waiter, states.get(waiter.node_id), now)
            if why is None:
                continue
            lost += 1
            log.warning(
                "attempt lost",
                extra={"request_id": waiter.request_id, "node_id": waiter.node_id, "reason": why},
            )
            waiter.interrupt(attempt_lost(waiter.node_id, why))
        if self._direct is not None:
            lost += self._direct(states)
        return lost


def _why_lost(waiter: ReplyWaiter, state: NodeState | None, now: float) -> str | None:
    if state is None:
        return "left the health registry"
    if state == "stale":
        return "stopped reporting its health"
    if waiter.idle_s is not None and now - waiter.last_event_at >= waiter.idle_s:
        return f"sent nothing for {waiter.idle_s:g} s"
    return None
