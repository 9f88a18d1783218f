"""The gateway's way out on SIGTERM, owned by the app and run by the server
(``commands/gateway_server.py``) before it stops listening. Explicit steps:

1. **Refuse.** Readiness fails at once and new requests are answered 503
   ``shutting_down`` with ``Retry-After`` (``api/shutdown_middleware.py``), while the
   server still listens: a load balancer sees both and sends elsewhere.
2. **Drain.** Requests in flight get ``server.graceful_shutdown_s`` to finish.
3. **Interrupt.** Those still waiting on a node are answered ``shutting_down`` by their
   own code: the dispatcher ends their waits, so a whole answer is a 503 and a stream
   ends with an ``error`` event; their jobs are cancelled, their limits settled and their
   usage and audit records queued like any other answer's.
4. **Cut off.** Whatever still runs ``answer_s`` (2 s) later (a body still arriving, a client
   that does not read) is cancelled, and the middleware answers it 503 itself.

Then the server stops listening and the lifespan stops the background tasks and closes
the clients, in order (``app.py``), and the process exits: within the grace plus a few
seconds, whatever the workers are doing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import suppress
from typing import Final

log = logging.getLogger(__name__)

# The key of the lifespan state under which the server finds the app's shutdown.
SHUTDOWN_STATE: Final = "api_router.shutdown"

_POLL_S = 0.05


class GracefulShutdown:
    def __init__(
        self,
        grace_s: float,
        interrupt: Callable[[], None],
        answer_s: float = 2.0,
        cut_off_s: float = 1.0,
    ) -> None:
        """``interrupt``: end every wait on a node with ``shutting_down`` (step 3);
        ``answer_s``: how long the interrupted requests get to send their answers before
        the cut-off; ``cut_off_s``: how long the middleware's own answers get."""
        self._grace_s = grace_s
        self._interrupt = interrupt
        self._answer_s = answer_s
        self._cut_off_s = cut_off_s
        self._running: set[asyncio.Timeout] = set()
        self._none_running = asyncio.Event()
        self.draining = False

    @property
    def in_flight(self) -> int:
        return len(self._running)

    def enter(self, cut_off: asyncio.Timeout) -> None:
        """A request starts; ``cut_off`` (entered, with no deadline) ends it at step 4."""
        self._running.add(cut_off)
        self._none_running.clear()

    def leave(self, cut_off: asyncio.Timeout) -> None:
        self._running.discard(cut_off)
        if not self._running:
            self._none_running.set()

    async def run(self, give_up: Callable[[], bool] = lambda: False) -> None:
        """Steps 1 to 4; returns once no request is left (or at once if ``give_up()``
        turns true: a second Ctrl-C)."""
        self.draining = True
        log.info("shutting down", extra={"in_flight": self.in_flight, "grace_s": self._grace_s})
        if await self._all_done(self._grace_s, give_up):
            return
        log.warning(
            "shutdown grace over; answering the rest shutting_down",
            extra={"in_flight": self.in_flight},
        )
        self._interrupt()
        if await self._all_done(self._answer_s, give_up):
            return
        log.warning("cutting off requests still running", extra={"in_flight": self.in_flight})
        now = asyncio.get_running_loop().time()
        for cut_off in list(self._running):
            cut_off.reschedule(now)
        await self._all_done(self._cut_off_s, give_up)

    async def _all_done(self, within_s: float, give_up: Callable[[], bool]) -> bool:
        """Wait until no request runs (True) or ``within_s`` has passed; ``give_up`` is
        looked at every ``_POLL_S``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within_s
        while self._running and not give_up() and loop.time() < deadline:
            with suppress(TimeoutError):
                async with asyncio.timeout(min(deadline - loop.time(), _POLL_S)):
                    await self._none_running.wait()
        return not self._running
