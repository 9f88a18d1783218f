"""What an admin may ask of routing, checked before it is stored, and the view of routing
in force that ``GET /v1/admin/routing`` and ``api-router routing show`` print.

Shared by the admin API and the CLI, so both refuse the same overrides with the same
reasons: negative weights (by the schema), unknown pools or nodes, all weights zero.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable
from typing import Annotated, Any

import msgspec

from api_router.config.policies import Policies
from api_router.errors import ApiError
from api_router.routing.breaker import Breakers
from api_router.routing.engine import tiers
from api_router.routing.override_set import Override, OverrideSet, Weight
from api_router.routing.snapshot import RoutingSnapshot

Reason = Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
Ttl = Annotated[float, msgspec.Meta(gt=0, le=30 * 86_400)]
NodeId = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]


class _Change(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    reason: Reason
    ttl_s: Ttl | None = None  # the override expires by itself after this long


class WeightsRequest(_Change, frozen=True):
    weights: Annotated[dict[str, Weight], msgspec.Meta(min_length=1)]


class PinRequest(_Change, frozen=True):
    nodes: Annotated[list[NodeId], msgspec.Meta(min_length=1)]


class DrainRequest(_Change, frozen=True):
    pass


def known_pools(snapshot: RoutingSnapshot, policies: Policies | None) -> set[str]:
    """Pools some registered node announces, or some route lists."""
    pools = {node.pool for node in snapshot.nodes}
    if policies is not None:
        for entry in policies.models.values():
            for tier in entry.routes or ():
                pools.update(tier)
    return pools


def weights_override(
    snapshot: RoutingSnapshot, policies: Policies | None, model: str, body: WeightsRequest,
    author: str,
) -> Override:  # fmt: skip
    unknown = sorted(set(body.weights) - known_pools(snapshot, policies))
    if unknown:
        raise ApiError("invalid_request", f"unknown pool(s): {', '.join(unknown)}")
    if not any(weight > 0 for weight in body.weights.values()):
        raise ApiError("invalid_request", "all weights are zero: the model could go nowhere")
    return _override("weights", model, body, author, weights=dict(body.weights))


def pin_override(snapshot: RoutingSnapshot, model: str, body: PinRequest, author: str) -> Override:
    _check_nodes(snapshot, body.nodes)
    return _override("pin", model, body, author, nodes=sorted(set(body.nodes)))


def drain_override(
    snapshot: RoutingSnapshot, node: str, body: DrainRequest, author: str
) -> Override:
    _check_nodes(snapshot, [node])
    return _override("drain", node, body, author)


def _check_nodes(snapshot: RoutingSnapshot, nodes: Iterable[str]) -> None:
    registered = {node.node_id for node in snapshot.nodes}
    unknown = sorted(set(nodes) - registered)
    if unknown:
        raise ApiError("invalid_request", f"unknown node(s): {', '.join(unknown)}")


def _override(kind: Any, target: str, body: _Change, author: str, **fields: Any) -> Override:
    now = time.time()
    return Override(
        id=f"ovr_{secrets.token_hex(8)}",
        kind=kind,
        target=target,
        author=author,
        reason=body.reason,
        created_at=round(now, 3),
        expires_at=None if body.ttl_s is None else round(now + body.ttl_s, 3),
        **fields,
    )


class NodeView(msgspec.Struct, frozen=True):
    node_id: str
    pool: str
    state: str  # health: healthy, stale, unavailable, too_hot, memory_pressure
    breaker: str  # this replica's breaker: closed, open, half_open (CLI: unknown)
    inflight: int
    max_concurrency: int
    drained: bool
    models_loaded: list[str]


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
    breakers: Breakers | None,
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
            breakers.state(node.node_id) if breakers is not None else "unknown",
            node.inflight,
            node.max_concurrency,
            node.node_id in overrides.drained,
            list(node.models_loaded),
        )  # fmt: skip
        for node in sorted(snapshot.nodes, key=lambda n: n.node_id)
    ]
    return RoutingView(models, list(overrides.overrides), nodes)
