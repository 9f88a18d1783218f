"""What an admin may ask of routing, checked before it is stored.

Shared by the admin API and ``api-router routing``, so both refuse the same overrides with
the same reasons: all weights zero (400), and pools or nodes nobody has registered (409
``conflict``: the request is well formed, the registry just does not hold them now). (The
request schema, ``api/admin/routing_contract.py``, refuses negative weights, empty lists
and reasons or TTLs out of bounds before these rules are asked.)
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from api_router.config.policies import Policies
from api_router.errors import ApiError
from api_router.routing.override_set import Override, OverrideKind
from api_router.routing.snapshot import RoutingSnapshot


@dataclass(frozen=True, slots=True)
class Change:
    """Who asks for an override, why, and for how long (``None``: until deleted)."""

    author: str
    reason: str
    ttl_s: float | None = None


def known_pools(snapshot: RoutingSnapshot, policies: Policies | None) -> set[str]:
    """Pools some registered node announces, or some route lists."""
    pools = {node.pool for node in snapshot.nodes}
    if policies is not None:
        for entry in policies.models.values():
            for tier in entry.routes or ():
                pools.update(tier)
    return pools


def weights_override(
    snapshot: RoutingSnapshot,
    policies: Policies | None,
    model: str,
    weights: Mapping[str, float],
    change: Change,
) -> Override:
    unknown = sorted(set(weights) - known_pools(snapshot, policies))
    if unknown:
        raise ApiError("conflict", f"unknown pool(s): {', '.join(unknown)}")
    if not any(weight > 0 for weight in weights.values()):
        raise ApiError("invalid_request", "all weights are zero: the model could go nowhere")
    return _override("weights", model, change, weights=dict(weights))


def pin_override(
    snapshot: RoutingSnapshot, model: str, nodes: Iterable[str], change: Change
) -> Override:
    wanted = set(nodes)
    _check_nodes(snapshot, wanted)
    return _override("pin", model, change, nodes=sorted(wanted))


def drain_override(snapshot: RoutingSnapshot, node: str, change: Change) -> Override:
    _check_nodes(snapshot, [node])
    return _override("drain", node, change)


def _check_nodes(snapshot: RoutingSnapshot, nodes: Iterable[str]) -> None:
    registered = {node.node_id for node in snapshot.nodes}
    unknown = sorted(set(nodes) - registered)
    if unknown:
        raise ApiError("conflict", f"unknown node(s): {', '.join(unknown)}")


def _override(kind: OverrideKind, target: str, change: Change, **fields: Any) -> Override:
    now = time.time()
    return Override(
        id=f"ovr_{secrets.token_hex(8)}",
        kind=kind,
        target=target,
        author=change.author,
        reason=change.reason,
        created_at=round(now, 3),
        expires_at=None if change.ttl_s is None else round(now + change.ttl_s, 3),
        **fields,
    )
