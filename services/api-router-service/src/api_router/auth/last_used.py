"""``last_used_at`` of keys, kept off the hot path.

A request only notes the key in memory; a background loop writes the noted keys in one
pipeline every few seconds, and a key at most once a minute per replica.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from api_router.errors import StoreUnavailable
from api_router.keyspace import Keyspace
from api_router.redis_store import Redis, store_errors

log = logging.getLogger(__name__)

WRITE_EVERY_S = 60.0
_FLUSH_INTERVAL_S = 5.0
_MAX_TRACKED = 100_000


class LastUsedRecorder:
    def __init__(
        self, redis: Redis, keys: Keyspace, clock: Callable[[], float] = time.time
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._clock = clock
        self._pending: dict[str, float] = {}
        self._written: dict[str, float] = {}

    def touch(self, key_id: str) -> None:
        now = self._clock()
        if now - self._written.get(key_id, 0.0) >= WRITE_EVERY_S:
            self._pending[key_id] = now

    async def run(self) -> None:
        while True:
            await asyncio.sleep(_FLUSH_INTERVAL_S)
            await self.flush()

    async def flush(self) -> None:
        if not self._pending:
            return
        batch, self._pending = self._pending, {}
        try:
            with store_errors("the key store"):
                await self._redis.hset(self._keys.key_last_used, mapping=dict(batch.items()))
        except StoreUnavailable:
            log.warning("last_used_at not written; Redis unavailable", extra={"keys": len(batch)})
            return
        if len(self._written) > _MAX_TRACKED:
            self._written.clear()
        self._written.update(batch)
