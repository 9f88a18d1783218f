"""The read model of routing: what ``GET /v1/admin/routing`` answers and ``api-router
routing show`` prints (each model's effective tiers and pin, the overrides in force, every
node with the answering replica's breaker)."""

from __future__ import annotations

import msgspec

from api_router.config.policies import Policies
from api_router.routing.breaker import Breakers
from api_router.routing.engine import tiers
from api_router.routing.override_set import Override, OverrideSet
from api_router.routing.snapshot import RoutingSnapshot


class NodeView(msgspec.Struct, frozen=True):
    node_id: str
    pool: str
    state: str  # health: healthy, stale, unavailable, too_hot, memory_pressure
    breaker: str  # the answering replica's breaker: closed, open, half_open
    inflight: int
    max_concurrency: int
    drained: bool
    models_loaded: list[str]
    # How the gateway reaches it: `streams` (its worker) or `http` (a direct node).
    transport: str = "streams"


class ModelView(msgspec.Struct, frozen=True):
    # Effective tiers (policy routes with the weight overrides applied), pool -> weight.
    tiers: list[dict[str, float]]
    pinned: list[str] | None


class RoutingView(msgspec.Struct, frozen=True):
    models: dict[str, ModelView]
    overrides: list[Override]
    nodes: list[NodeView]


def routing_view(
    snapshot: RoutingSnapshot,
    policies: Policies | None,
    overrides: OverrideSet,
    breakers: Breakers,
) -> RoutingView:
    models: dict[str, ModelView] = {}
    names = set(snapshot.known_models)
    if policies is not None:
        names.update(m for m, e in policies.models.items() if e.routes is not None)
    for model in sorted(names):
        routes = policies.routes(model) if policies is not None else None
        pools = snapshot.pools.get(model, {})
        pin = overrides.pins.get(model)
        models[model] = ModelView(
            tiers(routes, pools, overrides.weights.get(model)),
            sorted(pin) if pin is not None else None,
        )
    nodes = [
        NodeView(
            node.node_id,
            node.pool,
            snapshot.states.get(node.node_id, "stale"),
            breakers.state(node.node_id),
            node.inflight,
            node.max_concurrency,
            node.node_id in overrides.drained,
            list(node.models_loaded),
            node.transport,
        )
        for node in sorted(snapshot.nodes, key=lambda n: n.node_id)
    ]
    return RoutingView(models, list(overrides.overrides), nodes)
