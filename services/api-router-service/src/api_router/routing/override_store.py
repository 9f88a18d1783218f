"""Admin routing overrides in Redis, and each replica's copy of the set in force.

Overrides live in one hash (id -> Override JSON). A change is written, then announced on a
pub/sub channel; every replica re-reads the hash when told, and also every
``routing.overrides_refresh_s`` (a message lost while a subscription reconnects, or a TTL
running out, is then seen within that time). Requests read :attr:`OverrideStore.current`
and never Redis.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from typing import cast

import msgspec

from api_router.errors import StoreUnavailable
from api_router.keyspace import Keyspace
from api_router.redis_store import Redis, learn_topology, store_errors
from api_router.routing.override_set import Override, OverrideSet, override_decoder

log = logging.getLogger(__name__)

_RETRY_S = 1.0


class OverrideStore:
    def __init__(
        self,
        redis: Redis,
        keys: Keyspace,
        refresh_s: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._refresh_s = refresh_s
        self._clock = clock
        self._stored: tuple[Override, ...] = ()
        self._current = OverrideSet()
        self.read_at: float | None = None  # when Redis last answered (epoch seconds)

    @property
    def current(self) -> OverrideSet:
        return self._current

    async def refresh(self) -> None:
        """Read the hash and publish a new set; expired overrides are dropped from Redis.
        Without Redis the last overrides read are judged against the clock again."""
        now = self._clock()
        try:
            stored = await self.read()
            expired = [o.id for o in stored if not o.live(now)]
            if expired:
                with store_errors("routing overrides"):
                    await self._redis.hdel(self._keys.routing_overrides, *expired)
            self._stored = tuple(stored)
            self.read_at = now
        finally:
            self._current = OverrideSet.of(self._stored, now)

    @property
    def stored(self) -> tuple[Override, ...]:
        """The overrides as Redis last held them (expired ones included)."""
        return self._stored

    def restore(self, overrides: Iterable[Override]) -> None:
        """Overrides from the last-known-good cache, until Redis can be read."""
        self._stored = tuple(overrides)
        self._current = OverrideSet.of(self._stored, self._clock())

    async def read(self) -> list[Override]:
        with store_errors("routing overrides"):
            raw = await self._redis.hgetall(self._keys.routing_overrides)
        found = []
        for override_id, blob in cast(dict[bytes, bytes], raw).items():
            try:
                found.append(override_decoder.decode(blob))
            except (msgspec.ValidationError, msgspec.DecodeError):
                log.warning("ignoring malformed override", extra={"id": override_id.decode()})
        return sorted(found, key=lambda o: o.created_at)

    async def put(self, override: Override) -> None:
        """Store an override and tell every replica."""
        with store_errors("routing overrides"):
            # Written, then announced (two steps, so the same on a cluster): a replica told
            # re-reads a hash that has the change; a notice lost between the two is made up
            # for by the re-read every `routing.overrides_refresh_s`.
            await self._redis.hset(
                self._keys.routing_overrides, override.id, msgspec.json.encode(override)
            )
            await self._redis.publish(self._keys.routing_changes, override.id)
        await self._refresh_quietly()

    async def delete(self, *override_ids: str) -> None:
        with store_errors("routing overrides"):
            await self._redis.hdel(self._keys.routing_overrides, *override_ids)
            await self._redis.publish(self._keys.routing_changes, ",".join(override_ids))
        await self._refresh_quietly()

    async def run(self) -> None:
        """Listen for changes (and re-read every ``refresh_s`` regardless), forever;
        survives Redis outages."""
        while True:
            try:
                await self._listen()
            except StoreUnavailable:
                log.warning("routing overrides unreadable; retrying")
                self._current = OverrideSet.of(self._stored, self._clock())
                await asyncio.sleep(_RETRY_S)

    async def _listen(self) -> None:
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        try:
            with store_errors("routing overrides"):
                await learn_topology(self._redis)
                await pubsub.subscribe(self._keys.routing_changes)
            await self.refresh()  # what changed while we were not subscribed
            while True:
                with store_errors("routing overrides"):
                    await pubsub.get_message(timeout=self._refresh_s)
                await self.refresh()
        finally:
            try:
                with store_errors("routing overrides"):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]  # untyped in redis-py
            except StoreUnavailable:
                pass  # the connection is gone anyway

    async def _refresh_quietly(self) -> None:
        try:
            await self.refresh()
        except StoreUnavailable:
            pass  # written; the background loop catches up
