"""Health of the direct nodes, which have no worker to report it: the gateway probes them.

Every ``direct.probe_interval_s`` each replica walks its direct nodes; for each one it
takes or renews the node's probe lease (``probe_lease.lua``: ``SET NX PX``), so that one
replica at a time probes a node however many run. The holder asks the backend what it
serves (its model list; for Ollama also the loaded models, ``/api/ps``), writes the entry
into the health registry hash the workers write theirs to, and hands it to its own
``HealthRegistry`` at once. The other replicas read it from the hash like any entry.

When Redis cannot be reached every replica probes every node itself and routes by its own
probes: direct nodes keep being served. A probe that fails or takes longer than
``direct.probe_timeout_s`` marks the node unavailable and counts as a failure for its
breaker on the probing replica.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from api_router import __version__
from api_router.backends.base import BackendError, ModelInventory
from api_router.config.settings import DirectSettings
from api_router.dispatch.direct_nodes import DirectNodes, DirectTarget
from api_router.dispatch.protocol import LATEST_PROTOCOL
from api_router.errors import StoreUnavailable
from api_router.keyspace import Keyspace
from api_router.redis_store import Redis, lua_script, store_errors
from api_router.routing.breaker import Breakers
from api_router.routing.health_registry import HealthRegistry
from api_router.routing.node_health import NodeHealth, health_encoder

log = logging.getLogger(__name__)

# A lease outlives its holder's last round by this many probe intervals.
_LEASE_INTERVALS = 3


class DirectProber:
    def __init__(
        self,
        nodes: DirectNodes,
        redis: Redis,
        keys: Keyspace,
        instance_id: str,
        health: HealthRegistry,
        breakers: Breakers,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._nodes = nodes
        self._settings: DirectSettings = nodes.settings
        self._redis = redis
        self._keys = keys
        self._instance_id = instance_id
        self._health = health
        self._breakers = breakers
        self._clock = clock
        self._lease = redis.register_script(lua_script(__package__, "probe_lease"))
        self._lease_ms = int(self._settings.probe_interval_s * _LEASE_INTERVALS * 1000)
        self._inventory: dict[str, ModelInventory] = {}
        self._reachable: dict[str, bool] = {}
        self.probes = 0  # probes this replica has made (for tests and metrics)

    async def run(self) -> None:
        """Probe forever (the first round is made at start-up, before serving)."""
        while True:
            await asyncio.sleep(self._settings.probe_interval_s)
            await self.probe_all()

    async def probe_all(self) -> None:
        """One round: every direct node whose lease this replica holds (or, without
        Redis, every direct node) is probed, all at once."""
        if len(self._nodes):
            await asyncio.gather(*(self._round(target) for target in self._nodes))

    async def _round(self, target: DirectTarget) -> None:
        node_id = target.config.node_id
        shared = True
        try:
            with store_errors("the probe lease"):
                held = await self._lease(
                    keys=[self._keys.probe_lease(node_id)],
                    args=[self._instance_id, self._lease_ms],
                )
            if held != 1:
                return  # another replica probes it; its entry arrives through the registry
        except StoreUnavailable:
            shared = False  # local-only: probe it here, for this replica alone
        entry = await self._probe(target)
        self._health.observe(entry)
        if shared:
            try:
                with store_errors("the health registry"):
                    await self._redis.hset(self._keys.health, node_id, health_encoder.encode(entry))
            except StoreUnavailable:
                log.warning("direct node's health not published", extra={"node_id": node_id})

    async def _probe(self, target: DirectTarget) -> NodeHealth:
        node = target.config
        self.probes += 1
        reachable = True
        try:
            async with asyncio.timeout(self._settings.probe_timeout_s):
                self._inventory[node.node_id] = await target.backend.inventory()
        except (BackendError, TimeoutError) as exc:
            reachable = False
            self._breakers.failure(node.node_id)
            if self._reachable.get(node.node_id, True):
                reason = exc.message if isinstance(exc, BackendError) else "probe timed out"
                log.warning(
                    "direct node unreachable; unavailable",
                    extra={"node_id": node.node_id, "reason": reason},
                )
        else:
            if not self._reachable.get(node.node_id, True):
                log.info("direct node reachable again", extra={"node_id": node.node_id})
        self._reachable[node.node_id] = reachable
        inventory = self._inventory.get(node.node_id, ModelInventory([], []))
        return NodeHealth(
            node_id=node.node_id,
            pool=node.pool,
            models_loaded=inventory.loaded,
            models_available=inventory.available,
            ram_percent=0.0,  # a direct node's host is not ours to measure
            cpu_percent=0.0,
            temp_celsius=None,
            inflight=target.inflight,
            max_concurrency=node.max_concurrency,
            available=reachable,
            last_seen=self._clock(),
            version=__version__,
            backend=node.flavour,
            protocol=LATEST_PROTOCOL,
            transport="http",
            weight=node.weight,
        )
