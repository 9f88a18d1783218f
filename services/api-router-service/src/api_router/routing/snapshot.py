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

from api_router.api.errors import ApiError
from api_router.config.settings import HealthSettings
from api_router.routing.node_health import NodeHealth, model_names

NodeState = Literal["healthy", "stale", "unavailable", "too_hot", "memory_pressure"]


def node_state(node: NodeHealth, now: float, limits: HealthSettings) -> NodeState:
    if now - node.last_seen > limits.fresh_s:
        return "stale"
    if not node.available:
        return "unavailable"
    if node.temp_celsius is not None and node.temp_celsius > limits.max_temp_celsius:
        return "too_hot"
    if node.ram_percent > limits.max_ram_percent:
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

    @classmethod
    def build(
        cls, nodes: Iterable[NodeHealth], now: float, limits: HealthSettings
    ) -> RoutingSnapshot:
        nodes = tuple(nodes)
        states = {node.node_id: node_state(node, now, limits) for node in nodes}
        known: set[str] = set()
        resident: dict[str, list[NodeHealth]] = {}
        servable: dict[str, list[NodeHealth]] = {}
        for node in nodes:
            loaded = model_names(node.models_loaded)
            serves = model_names(node.models_available) | loaded
            known |= serves
            if states[node.node_id] != "healthy":
                continue
            for model in serves:
                bucket = resident if model in loaded else servable
                bucket.setdefault(model, []).append(node)
        ranked = {
            model: rank(resident.get(model, ()), servable.get(model, ()))
            for model in resident.keys() | servable.keys()
        }
        return cls(nodes, states, ranked, frozenset(known))

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


def rank(resident: Sequence[NodeHealth], servable: Sequence[NodeHealth]) -> tuple[NodeHealth, ...]:
    """Nodes that already hold the model first (least busy first, so a warm model is reused
    without piling onto one node), then those that would load it, lowest RAM use first."""
    warm = sorted(resident, key=lambda n: (n.load, n.ram_percent, n.node_id))
    cold = sorted(servable, key=lambda n: (n.ram_percent, n.load, n.node_id))
    return (*warm, *cold)
