"""Blocking calls run off the event loop in daemon threads, and waited for at shutdown.

Unlike ``asyncio.to_thread``, a call that never returns cannot keep the process from
exiting: sqlitedict's thread dies when a commit fails, and whoever waits on it then waits
forever. A call whose caller gave up (a timeout, a cancelled task) keeps running, so the
owner waits for those with :meth:`BlockingCalls.settle` before closing what they use.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


class BlockingCalls:
    def __init__(self, name: str) -> None:
        self._name = name
        self._running: set[asyncio.Future[Any]] = set()

    async def run(
        self, timeout_s: float, call: Callable[P, T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """The call's result; ``TimeoutError`` after ``timeout_s`` (the call goes on)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()

        def work() -> None:
            try:
                result = call(*args, **kwargs)
            except BaseException as exc:  # handed over to the awaiting task
                _deliver(loop, _fail, future, exc)
            else:
                _deliver(loop, _succeed, future, result)

        self._running.add(future)
        future.add_done_callback(self._forget)
        threading.Thread(target=work, name=self._name, daemon=True).start()
        async with asyncio.timeout(timeout_s):
            return await asyncio.shield(future)

    def _forget(self, future: asyncio.Future[Any]) -> None:
        self._running.discard(future)
        if not future.cancelled():
            future.exception()  # retrieved: a caller that gave up has already been told

    async def settle(self, timeout_s: float) -> None:
        """Wait (up to ``timeout_s``) for calls still running."""
        if self._running:
            await asyncio.wait(set(self._running), timeout=timeout_s)


def _deliver(
    loop: asyncio.AbstractEventLoop,
    outcome: Callable[[asyncio.Future[T], Any], None],
    future: asyncio.Future[T],
    value: object,
) -> None:
    try:
        loop.call_soon_threadsafe(outcome, future, value)
    except RuntimeError:
        pass  # the loop is closed: nobody is waiting any more


def _succeed(future: asyncio.Future[T], result: T) -> None:
    if not future.done():  # a caller that timed out cancelled it
        future.set_result(result)


def _fail(future: asyncio.Future[T], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)
