"""A point-in-time view of the nodes, and the pure node choice over it.

A snapshot is built once per refresh (at most every second); it classifies every node and
ranks, per model, the healthy nodes that serve it, so that choosing for a request is one
dictionary lookup. Nothing here reads Redis or a clock.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from api_router.config.settings import HealthSettings
from api_router.errors import ApiError
from api_router.routing.node_health import NodeHealth, model_names

# (resident, cold) nodes of one pool for one model, each best first.
PoolNodes = tuple[tuple[NodeHealth, ...], tuple[NodeHealth, ...]]

NodeState = Literal["healthy", "stale", "unavailable", "too_hot", "memory_pressure"]


def node_state(
    node: NodeHealth, now: float, limits: HealthSettings, previous: NodeState | None = None
) -> NodeState:
    """The node's state; ``previous`` (its state in the last snapshot) adds hysteresis: a
    node out for heat or memory stays out until it is below the threshold minus a margin."""
    if now - node.last_seen > limits.fresh_s:
        return "stale"
    if not node.available:
        return "unavailable"
    max_temp = limits.max_temp_celsius
    if previous == "too_hot":
        max_temp -= limits.temp_margin_celsius
    if node.temp_celsius is not None and node.temp_celsius > max_temp:
        return "too_hot"
    max_ram = limits.max_ram_percent
    if previous == "memory_pressure":
        max_ram -= limits.ram_margin_percent
    if node.ram_percent > max_ram:
        return "memory_pressure"
    return "healthy"


@dataclass(frozen=True, slots=True)
class RoutingSnapshot:
    nodes: tuple[NodeHealth, ...] = ()
    states: dict[str, NodeState] = field(default_factory=dict)
    # model -> healthy nodes serving it, best first
    ranked: dict[str, tuple[NodeHealth, ...]] = field(default_factory=dict)
    # every model any registered node lists, healthy or not
    known_models: frozenset[str] = frozenset()
    # model -> the kinds (backends) of the registered nodes that list it, healthy or not:
    # what a request may ask of the model (backends/capabilities.py)
    kinds: dict[str, frozenset[str]] = field(default_factory=dict)

    # model -> pool -> (healthy nodes with the model loaded, least busy first; healthy
    # nodes that would load it, lowest RAM first): what the routing engine chooses from.
    pools: dict[str, dict[str, PoolNodes]] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        nodes: Iterable[NodeHealth],
        now: float,
        limits: HealthSettings,
        previous: RoutingSnapshot | None = None,
    ) -> RoutingSnapshot:
        """``previous`` is the last snapshot, whose states give the hysteresis margins."""
        nodes = tuple(nodes)
        before = previous.states if previous is not None else {}
        states = {
            node.node_id: node_state(node, now, limits, before.get(node.node_id)) for node in nodes
        }
        kinds: dict[str, set[str]] = {}
        resident: dict[str, list[NodeHealth]] = {}
        servable: dict[str, list[NodeHealth]] = {}
        for node in nodes:
            loaded = model_names(node.models_loaded)
            serves = model_names(node.models_available) | loaded
            for model in serves:
                kinds.setdefault(model, set()).add(node.backend)
            if states[node.node_id] != "healthy":
                continue
            for model in serves:
                bucket = resident if model in loaded else servable
                bucket.setdefault(model, []).append(node)
        ranked = {
            model: rank(resident.get(model, ()), servable.get(model, ()))
            for model in resident.keys() | servable.keys()
        }
        pools = {
            model: by_pool(resident.get(model, ()), servable.get(model, ())) for model in ranked
        }
        return cls(
            nodes,
            states,
            ranked,
            known_models=frozenset(kinds),
            kinds={model: frozenset(found) for model, found in kinds.items()},
            pools=pools,
        )

    def candidates(self, model: str) -> tuple[NodeHealth, ...]:
        """Healthy nodes for ``model``, best first; raises when there are none."""
        found = self.ranked.get(model)
        if found:
            return found
        if model in self.known_models:
            raise ApiError("no_capacity", f"no healthy node can serve model {model!r} now")
        raise ApiError("model_not_found", f"no node serves model {model!r}")

    def fresh_count(self) -> int:
        return sum(1 for state in self.states.values() if state != "stale")

    def state_counts(self) -> Counter[NodeState]:
        return Counter(self.states.values())


def by_pool(resident: Sequence[NodeHealth], cold: Sequence[NodeHealth]) -> dict[str, PoolNodes]:
    """Each pool's resident and cold nodes, each best first (the order of :func:`rank`)."""
    warm_of: dict[str, list[NodeHealth]] = {}
    cold_of: dict[str, list[NodeHealth]] = {}
    ranked = rank(resident, cold)
    for node in ranked[: len(resident)]:
        warm_of.setdefault(node.pool, []).append(node)
    for node in ranked[len(resident) :]:
        cold_of.setdefault(node.pool, []).append(node)
    return {
        pool: (tuple(warm_of.get(pool, ())), tuple(cold_of.get(pool, ())))
        for pool in warm_of.keys() | cold_of.keys()
    }


def rank(resident: Sequence[NodeHealth], servable: Sequence[NodeHealth]) -> tuple[NodeHealth, ...]:
    """Nodes that already hold the model first (least busy first, so a warm model is reused
    without piling onto one node), then those that would load it, lowest RAM use first."""
    warm = sorted(resident, key=lambda n: (n.load, n.ram_percent, n.node_id))
    cold = sorted(servable, key=lambda n: (n.ram_percent, n.load, n.node_id))
    return (*warm, *cold)
