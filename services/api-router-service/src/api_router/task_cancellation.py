"""Cancelling long-running background tasks so that the cancellation sticks."""

from __future__ import annotations

import asyncio
from typing import Any

_RECHECK_S = 0.05


async def stop_task(task: asyncio.Task[Any]) -> None:
    """Cancel ``task`` and wait until it has ended.

    A single ``cancel()`` is not enough: redis-py can swallow a cancellation that lands
    while a command's reply is being read (redis/redis-py#2028), and the loop then carries
    on. So keep cancelling until the task is done.
    """
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=_RECHECK_S)
    if not task.cancelled():
        error = task.exception()
        if error is not None:
            raise error  # a crashed loop is a bug: surface it
