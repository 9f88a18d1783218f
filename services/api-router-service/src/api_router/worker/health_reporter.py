"""Publishes the node's health into the registry hash that gateways route by."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from api_router import __version__
from api_router.backends.base import Backend, BackendError, ModelInventory
from api_router.dispatch.protocol import LATEST_PROTOCOL
from api_router.keyspace import Keyspace
from api_router.redis_store import Redis, store_errors
from api_router.routing.node_health import NodeHealth, health_encoder
from api_router.worker import system_probe

log = logging.getLogger(__name__)


class HealthReporter:
    def __init__(
        self,
        redis: Redis,
        keys: Keyspace,
        node_id: str,
        pool: str,
        max_concurrency: int,
        backend: Backend,
        clock: Callable[[], float] = time.time,
        thermal_zones: Path = system_probe.THERMAL_ZONES,
    ) -> None:
        self._redis = redis
        self._key = keys.health
        self._node_id = node_id
        self._pool = pool
        self._max_concurrency = max_concurrency
        self._backend = backend
        self._clock = clock
        self._thermal_zones = thermal_zones
        self._inventory = ModelInventory([], [])
        self._backend_reachable = True

    async def publish(self, inflight: int, accepting: bool) -> NodeHealth:
        """Ask the backend what it serves, then write this node's entry."""
        await self._refresh_inventory()
        health = NodeHealth(
            node_id=self._node_id,
            pool=self._pool,
            models_loaded=self._inventory.loaded,
            models_available=self._inventory.available,
            ram_percent=system_probe.ram_percent(),
            cpu_percent=system_probe.cpu_percent(),
            temp_celsius=system_probe.temp_celsius(self._thermal_zones),
            inflight=inflight,
            max_concurrency=self._max_concurrency,
            available=accepting and self._backend_reachable,
            last_seen=self._clock(),
            version=__version__,
            backend=self._backend.name,
            protocol=LATEST_PROTOCOL,
        )
        with store_errors("the health registry"):
            await self._redis.hset(self._key, self._node_id, health_encoder.encode(health))
        return health

    async def withdraw(self) -> None:
        with store_errors("the health registry"):
            await self._redis.hdel(self._key, self._node_id)

    async def _refresh_inventory(self) -> None:
        try:
            self._inventory = await self._backend.inventory()
        except BackendError as exc:
            if self._backend_reachable:
                log.warning("backend unreachable; node unavailable", extra={"reason": exc.message})
            self._backend_reachable = False
            return
        if not self._backend_reachable:
            log.info("backend reachable again")
        self._backend_reachable = True
