"""The shutdown's steps with stand-in requests: each is a task under its own cut-off,
as the shutdown middleware runs it."""

from __future__ import annotations

import asyncio

from api_router.graceful_shutdown import GracefulShutdown


class Requests:
    """Requests that run until released, or until interrupted if they heed it."""

    def __init__(self, shutdown: GracefulShutdown) -> None:
        self._shutdown = shutdown
        self.interrupted = asyncio.Event()
        self.release = asyncio.Event()
        self.ended: list[str] = []

    async def one(self, name: str, heeds_interrupt: bool) -> None:
        try:
            async with asyncio.timeout(None) as cut_off:
                self._shutdown.enter(cut_off)
                try:
                    waits = [asyncio.create_task(self.release.wait())]
                    if heeds_interrupt:
                        waits.append(asyncio.create_task(self.interrupted.wait()))
                    try:
                        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        for wait in waits:
                            wait.cancel()
                    self.ended.append(f"{name}: answered")
                finally:
                    self._shutdown.leave(cut_off)
        except TimeoutError:
            self.ended.append(f"{name}: cut off")


async def test_requests_that_finish_within_the_grace_are_never_interrupted() -> None:
    calls: list[str] = []
    shutdown = GracefulShutdown(30.0, lambda: calls.append("interrupt"))
    requests = Requests(shutdown)
    running = asyncio.create_task(requests.one("a", heeds_interrupt=True))
    await asyncio.sleep(0)
    assert shutdown.in_flight == 1
    draining = asyncio.create_task(shutdown.run())
    await asyncio.sleep(0)
    assert shutdown.draining
    requests.release.set()
    await asyncio.gather(draining, running)
    assert requests.ended == ["a: answered"]
    assert calls == [] and shutdown.in_flight == 0


async def test_after_the_grace_the_rest_are_interrupted_then_cut_off() -> None:
    shutdown = GracefulShutdown(0.05, lambda: requests.interrupted.set(), 0.05, 1.0)
    requests = Requests(shutdown)
    heeding = asyncio.create_task(requests.one("heeds", heeds_interrupt=True))
    stuck = asyncio.create_task(requests.one("stuck", heeds_interrupt=False))
    await asyncio.sleep(0)
    await shutdown.run()
    await asyncio.gather(heeding, stuck)
    assert requests.ended == ["heeds: answered", "stuck: cut off"]
    assert shutdown.in_flight == 0


async def test_a_second_signal_stops_waiting() -> None:
    shutdown = GracefulShutdown(30.0, lambda: None)
    requests = Requests(shutdown)
    running = asyncio.create_task(requests.one("a", heeds_interrupt=False))
    await asyncio.sleep(0)
    await shutdown.run(give_up=lambda: True)
    assert shutdown.in_flight == 1  # left to the server's own (forced) exit
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)
