"""Remembers signature nonces per key, across every replica: one ``SET NX EX`` each."""

from __future__ import annotations

from api_router.keyspace import Keyspace
from api_router.redis_store import Redis, store_errors


class NonceLedger:
    def __init__(self, redis: Redis, keys: Keyspace, window_s: int) -> None:
        self._redis = redis
        self._keys = keys
        self.window_s = window_s

    async def first_use(self, key_id: str, nonce: str) -> bool:
        """True the first time ``nonce`` is seen for ``key_id`` within the window."""
        with store_errors("the nonce store"):
            stored = await self._redis.set(
                self._keys.nonce(key_id, nonce), b"1", nx=True, ex=self.window_s
            )
        return bool(stored)
