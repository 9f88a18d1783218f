"""Settlements on their way to Redis, written in batches off the response path.

Each ended request's settlement is queued; one writer task sends what is queued, and what
queues while it waits on Redis goes in its next batch (a group commit). A batch of one is
a plain script call, a larger one a pipeline of ``EVALSHA`` calls (one round trip; on a
cluster, whose pipelines redis-py keeps scripts out of, the calls go at once instead):
under load a request's settlement no longer costs a task and a round trip of its own, and
at low rates nothing waits for a timer.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from redis.asyncio import RedisCluster
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

from api_router.errors import StoreUnavailable
from api_router.redis_store import Redis, store_errors

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Settlement:
    request_id: str
    keys: list[str]
    args: list[str | int]


class Settlements:
    def __init__(self, redis: Redis, script: AsyncScript) -> None:
        self._redis = redis
        self._script = script
        self._queued: list[Settlement] = []
        self._writer: asyncio.Task[None] | None = None

    def add(self, settlement: Settlement) -> None:
        self._queued.append(settlement)
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_queued())

    async def written(self, timeout_s: float) -> None:
        """Wait (up to ``timeout_s``) until what is queued so far has been written."""
        if self._writer is not None:
            await asyncio.wait({self._writer}, timeout=timeout_s)

    async def _write_queued(self) -> None:
        try:
            while self._queued:
                batch, self._queued = self._queued, []
                try:
                    with store_errors("the limiter"):
                        await self._write(batch)
                except StoreUnavailable:
                    # Leases expire by themselves; reservations stay charged (never under).
                    for lost in batch:
                        log.warning(
                            "settlement lost: redis unavailable",
                            extra={"request_id": lost.request_id},
                        )
                except Exception as exc:  # a bug: said, and the writer goes on
                    ids = [lost.request_id for lost in batch]
                    log.error("settlements failed", extra={"error": repr(exc), "requests": ids})
        finally:
            self._writer = None

    async def _write(self, batch: list[Settlement]) -> None:
        if len(batch) == 1 or isinstance(self._redis, RedisCluster):
            # redis-py refuses EVALSHA in a cluster's pipeline: there, one call each, at once.
            await asyncio.gather(*(self._script(keys=s.keys, args=s.args) for s in batch))
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for settlement in batch:
                keys, args = settlement.keys, settlement.args
                pipe.evalsha(self._script.sha, len(keys), *keys, *args)
            results: list[Any] = await pipe.execute(raise_on_error=False)
        for settlement, result in zip(batch, results, strict=True):
            if isinstance(result, NoScriptError):  # Redis lost its scripts (a restart)
                await self._script(keys=settlement.keys, args=settlement.args)  # loads it
            elif isinstance(result, Exception):
                raise result
