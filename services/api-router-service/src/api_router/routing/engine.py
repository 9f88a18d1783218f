"""The routing decision: a pure, in-process choice over a health snapshot, the model's
failover tiers, the admin overrides and this replica's breakers. No Redis, no clock.

Order of a plan (the first candidate is the choice, the rest are for retries):

1. The first tier (of the model's routes) that has a candidate; later tiers follow, as
   failover. Without routes, every pool is in one tier with weight 1.
2. Inside a tier, pools in a weighted random order (Efraimidis-Spirakis keys
   ``u ** (1 / w)``): the first pool is picked in proportion to the effective weights of
   the pools that have a candidate.
3. Inside a pool, nodes with the model loaded first (``sticky``): the better of two random
   picks, each in proportion to the nodes' weights (power of two choices, so replicas do
   not herd on the same idle node), then the
   rest least busy first; then nodes that would load it, most free memory first
   (``least_loaded``).
4. With a session id, the tier's resident node with the highest weighted rendezvous score
   goes first (``affinity``): the same node for as long as it stays eligible.

A node is eligible when it is healthy in the snapshot, not drained, allowed by the model's
pin, its breaker is not open, and it can do what the request asks (``capable``: its kind
honours the request's features).
"""

from __future__ import annotations

import functools
import hashlib
import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from api_router.config.policies import Tier
from api_router.errors import ApiError
from api_router.routing.breaker import Breakers
from api_router.routing.node_health import NodeHealth
from api_router.routing.override_set import OverrideSet
from api_router.routing.snapshot import PoolNodes, RoutingSnapshot

Reason = Literal["sticky", "least_loaded", "affinity", "failover"]
REASONS: tuple[Reason, ...] = ("sticky", "least_loaded", "affinity", "failover")
_Filter = Callable[[NodeHealth], bool]


@dataclass(frozen=True, slots=True)
class Candidate:
    node: NodeHealth
    reason: Reason


@dataclass(frozen=True, slots=True)
class RoutePlan:
    model: str
    candidates: tuple[Candidate, ...]

    @property
    def reason(self) -> Reason:
        return self.candidates[0].reason


class RoutingEngine:
    def __init__(self, rng: random.Random | None = None, limit: int = 8) -> None:
        """``limit``: candidates per plan (enough for the attempts and a few full nodes)."""
        self._rng = rng or random.Random()
        self._limit = limit

    def choose(
        self,
        snapshot: RoutingSnapshot,
        model: str,
        routes: Sequence[Tier] | None,
        overrides: OverrideSet,
        breakers: Breakers,
        session_id: str | None = None,
        capable: _Filter | None = None,
    ) -> RoutePlan:
        """The plan for one request; raises ``model_not_found`` / ``no_capacity``."""
        snapshot.candidates(model)  # raises when no healthy node serves the model at all
        pools = snapshot.pools[model]
        pin = overrides.pins.get(model)
        blocked = overrides.drained | breakers.unavailable()  # small sets: one lookup a node

        def eligible(node: NodeHealth) -> bool:
            node_id = node.node_id
            return (
                node_id not in blocked
                and (pin is None or node_id in pin)
                and (capable is None or capable(node))
            )

        chosen: list[Candidate] = []
        for number, tier in enumerate(tiers(routes, pools, overrides.weights.get(model))):
            self._plan_tier(pools, tier, eligible, session_id, number == 0, chosen)
            if len(chosen) >= self._limit:
                break
        if not chosen:
            raise _no_capacity(model)
        return RoutePlan(model, tuple(chosen[: self._limit]))

    def _plan_tier(
        self,
        pools: dict[str, PoolNodes],
        tier: dict[str, float],
        eligible: _Filter,
        session_id: str | None,
        first_tier: bool,
        out: list[Candidate],
    ) -> None:
        rng = self._rng

        def add(node: NodeHealth, reason: Reason) -> None:
            # Only the choice itself has a reason of its own; the rest are failover.
            out.append(Candidate(node, reason if first_tier and not out else "failover"))

        keyed = [
            (rng.random() ** (1.0 / weight), pool)
            for pool, weight in tier.items()
            if weight > 0 and pool in pools
        ]
        keyed.sort(reverse=True)
        ordered = [pool for _, pool in keyed]
        pinned: NodeHealth | None = None
        if session_id is not None:
            pinned = _rendezvous(session_id, pools, ordered, tier, eligible)
            if pinned is not None:
                add(pinned, "affinity")
        for pool in ordered:
            resident, cold = pools[pool]
            warm = [n for n in resident if n is not pinned and eligible(n)]
            if len(warm) > 1:  # power of two choices over the ranked list: the better index
                best = min(_pick(rng, warm), _pick(rng, warm))
                warm.insert(0, warm.pop(best))
            for node in warm:
                add(node, "sticky")
            for node in cold:
                if len(out) >= self._limit:
                    return
                if eligible(node):
                    add(node, "least_loaded")
            if len(out) >= self._limit:
                return


def tiers(
    routes: Sequence[Tier] | None,
    pools: dict[str, PoolNodes],
    weights: Mapping[str, float] | None,
) -> list[dict[str, float]]:
    """The model's tiers with the admin's weights applied. An overridden weight replaces
    the policy's wherever the pool is listed; a pool the policy does not list joins the
    first tier. Without routes: one tier of every pool, weight 1."""
    base = [dict(tier) for tier in routes] if routes else [dict.fromkeys(pools, 1.0)]
    if weights:
        for pool, weight in weights.items():
            listed = [tier for tier in base if pool in tier]
            for tier in listed or base[:1]:
                tier[pool] = weight
    return base


def _pick(rng: random.Random, nodes: list[NodeHealth]) -> int:
    """A random index, in proportion to the nodes' weights (uniform when they are equal,
    as they are for worker nodes)."""
    weights = [node.weight for node in nodes]
    if min(weights) == max(weights):
        return rng.randrange(len(nodes))
    return rng.choices(range(len(nodes)), weights)[0]


def _rendezvous(
    session_id: str,
    pools: dict[str, PoolNodes],
    ordered: list[str],
    tier: dict[str, float],
    eligible: _Filter,
) -> NodeHealth | None:
    """Weighted rendezvous hashing over the tier's eligible resident nodes: the highest
    ``w / -ln(h)`` wins (``w``: the pool's weight times the node's), so a session keeps
    its node while that node stays eligible, and sessions spread over pools (and nodes)
    in proportion to their weights."""
    session = _stable_hash(session_id)
    best: NodeHealth | None = None
    best_score = -1.0
    log, mask, span = math.log, _MASK, _UNIT_SPAN  # locals: this loop is the hot spot
    for pool in ordered:
        weight = tier[pool]
        for node in pools[pool][0]:
            if not eligible(node):
                continue
            # splitmix64's finalizer over session ^ node: cheap and well spread.
            mixed = session ^ _stable_hash(node.node_id)
            mixed = ((mixed ^ (mixed >> 30)) * 0xBF58476D1CE4E5B9) & mask
            mixed = ((mixed ^ (mixed >> 27)) * 0x94D049BB133111EB) & mask
            score = weight * node.weight / -log(((mixed ^ (mixed >> 31)) + 1) / span)
            if score > best_score:
                best, best_score = node, score
    return best


_MASK = (1 << 64) - 1
_UNIT_SPAN = float(1 << 64) + 2.0


@functools.lru_cache(maxsize=65_536)
def _stable_hash(text: str) -> int:
    """64 bits of blake2b: the same on every replica and run (unlike ``hash()``). Cached,
    since node ids repeat and session ids often do."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def _no_capacity(model: str) -> ApiError:
    return ApiError(
        "no_capacity",
        f"no node may take model {model!r} now (drained, pinned elsewhere or circuit open)",
    )
