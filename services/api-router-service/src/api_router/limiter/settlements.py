"""Settlements on their way to Redis, written in batches off the response path.

Each ended request's settlement is queued; one writer task sends what is queued, and what
queues while it waits on Redis goes in its next batch (a group commit). The settle script
takes a list of adjustments, so a batch is one script call with its settlements' lists
joined (up to ``_PER_CALL`` settlements each): under load a request's settlement costs
neither a task, nor a round trip, nor a script call of its own, and at low rates nothing
waits for a timer. On a Redis Cluster a script's keys must share a slot, and tenants'
keys do not: there each settlement is its own call, all sent at once.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from redis.asyncio import RedisCluster
from redis.commands.core import AsyncScript

from api_router.errors import StoreUnavailable
from api_router.redis_store import Redis, store_errors

log = logging.getLogger(__name__)

# settle.lua's arguments before the four of each key: the usage hash's TTL, months kept.
_SHARED_ARGS = 2
# Settlements per script call: Redis runs nothing else while a script runs.
_PER_CALL = 64


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
        if isinstance(self._redis, RedisCluster):
            await asyncio.gather(*(self._script(keys=s.keys, args=s.args) for s in batch))
            return
        for start in range(0, len(batch), _PER_CALL):
            chunk = batch[start : start + _PER_CALL]
            keys = [key for settlement in chunk for key in settlement.keys]
            # The shared arguments (the same constants in every settlement), then each
            # settlement's four per key.
            args = chunk[0].args[:_SHARED_ARGS]
            args += [arg for settlement in chunk for arg in settlement.args[_SHARED_ARGS:]]
            await self._script(keys=keys, args=args)  # loads the script if Redis lost it
