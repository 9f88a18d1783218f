"""Listens for key changes published by any replica or the CLI and drops cached records.

Pub/sub delivers a change within milliseconds over a live connection; Redis drops a
subscriber rather than lose a message to it, so a missed notice always shows up as a lost
connection. From then until the subscription is back, the store caches nothing for longer
than 1 s and everything cached before is forgotten: revocation reaches this replica within
1 s either way.
"""

from __future__ import annotations

import asyncio
import logging

from api_router.auth.key_store import KeyStore
from api_router.errors import StoreUnavailable
from api_router.redis_store import Redis, learn_topology, store_errors

log = logging.getLogger(__name__)

_RETRY_S = (0.1, 0.25, 0.5, 1.0)


class KeyEventListener:
    def __init__(self, redis: Redis, channel: str, store: KeyStore) -> None:
        self._redis = redis
        self._channel = channel
        self._store = store
        self._subscribed = asyncio.Event()

    async def wait_subscribed(self, timeout_s: float) -> bool:
        try:
            async with asyncio.timeout(timeout_s):
                await self._subscribed.wait()
        except TimeoutError:
            return False
        return True

    async def run(self) -> None:
        failures = 0
        while True:
            try:
                await self._listen()
            except StoreUnavailable:
                delay = _RETRY_S[min(failures, len(_RETRY_S) - 1)]
                failures += 1
                if failures == 1:
                    log.warning("key change notices unavailable; caching keys for 1 s at most")
                await asyncio.sleep(delay)
            else:
                failures = 0

    async def _listen(self) -> None:
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        try:
            with store_errors("key change notices"):
                await learn_topology(self._redis)
                await pubsub.subscribe(self._channel)
                # Anything cached before the subscription may have missed a notice.
                self._store.invalidate()
                self._store.subscribed = True
                self._subscribed.set()
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        data = message["data"]
                        self._store.invalidate(data.decode() if isinstance(data, bytes) else data)
        finally:
            self._store.subscribed = False
            self._subscribed.clear()
            self._store.invalidate()
            with store_errors("key change notices"):
                await pubsub.aclose()  # type: ignore[no-untyped-call]
