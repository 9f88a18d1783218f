"""Each replica's view of the node health hash, refreshed in the background.

Requests read :attr:`HealthRegistry.snapshot` (no Redis call). When Redis cannot be read,
the last entries are re-judged against the clock, so silent nodes still turn stale.

The replica's own probes of its direct nodes (``dispatch/direct_probe.py``) are added as
they are made (:meth:`HealthRegistry.observe`): of two entries of one node, the newer
counts, so a replica that cannot read Redis still routes to its direct nodes by their
last probe, and a replica that can sees the probes of whichever replica made them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import cast

import msgspec

from api_router.config.settings import HealthSettings
from api_router.errors import StoreUnavailable
from api_router.keyspace import Keyspace
from api_router.redis_store import Redis, store_errors
from api_router.routing.node_health import NodeHealth, health_decoder
from api_router.routing.snapshot import RoutingSnapshot

log = logging.getLogger(__name__)


class HealthRegistry:
    def __init__(
        self,
        redis: Redis,
        keys: Keyspace,
        limits: HealthSettings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._limits = limits
        self._clock = clock
        self._entries: tuple[NodeHealth, ...] = ()
        self._observed: dict[str, NodeHealth] = {}  # this replica's probes, by node
        self._snapshot = RoutingSnapshot()
        self._last_refresh_ok = False

    @property
    def snapshot(self) -> RoutingSnapshot:
        return self._snapshot

    async def refresh(self) -> None:
        """Read the hash once and publish a new snapshot."""
        now = self._clock()
        try:
            with store_errors("the health registry"):
                raw = await self._redis.hgetall(self._keys.health)
            self._entries = tuple(self._decode(cast(dict[bytes, bytes], raw)))
            await self._forget_silent_nodes(now)
            self._last_refresh_ok = True
        except StoreUnavailable:
            if self._last_refresh_ok:
                log.warning("health registry unreadable; judging last known entries")
            self._last_refresh_ok = False
        self._publish(now)

    def observe(self, entry: NodeHealth) -> None:
        """This replica's probe of a direct node: counted at once, and for as long as it
        is newer than what the registry holds."""
        self._observed[entry.node_id] = entry
        self._publish(self._clock())

    def _publish(self, now: float) -> None:
        nodes = {node.node_id: node for node in self._entries}
        for node_id, entry in self._observed.items():
            known = nodes.get(node_id)
            if known is None or entry.last_seen >= known.last_seen:
                nodes[node_id] = entry
        self._snapshot = RoutingSnapshot.build(nodes.values(), now, self._limits, self._snapshot)

    async def run(self) -> None:
        """Refresh forever, every ``refresh_interval_s``."""
        while True:
            await self.refresh()
            await asyncio.sleep(self._limits.refresh_interval_s)

    def _decode(self, raw: dict[bytes, bytes]) -> list[NodeHealth]:
        nodes = []
        for node_id, blob in raw.items():
            try:
                nodes.append(health_decoder.decode(blob))
            # Workers write these: invalid UTF-8 (msgspec's UnicodeDecodeError) included.
            except (msgspec.DecodeError, UnicodeDecodeError) as exc:
                log.warning(
                    "ignoring malformed health entry",
                    extra={"node_id": node_id.decode(errors="replace"), "reason": str(exc)},
                )
        return nodes

    async def _forget_silent_nodes(self, now: float) -> None:
        silent = [n for n in self._entries if now - n.last_seen > self._limits.forget_after_s]
        if silent:
            with store_errors("the health registry"):
                await self._redis.hdel(self._keys.health, *(n.node_id for n in silent))
            log.info("forgot silent nodes", extra={"nodes": [n.node_id for n in silent]})
            self._entries = tuple(n for n in self._entries if n not in silent)
