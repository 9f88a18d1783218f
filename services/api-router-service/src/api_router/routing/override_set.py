"""Admin routing overrides: one override as stored, and the set in force as the engine
reads it (drained nodes, pins and weights per model).

An override has an id, an author (the admin key id), a reason and an optional expiry. The
set in force is rebuilt from the stored overrides by each replica; expired ones are left
out by the reader, so an override with a TTL ends on time even before Redis removes it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Literal

import msgspec

OverrideKind = Literal["weights", "drain", "pin"]
Weight = Annotated[float, msgspec.Meta(ge=0)]


class Override(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    kind: OverrideKind
    # `weights` and `pin`: the model; `drain`: the node.
    target: str
    weights: dict[str, Weight] = msgspec.field(default_factory=dict)  # kind `weights`
    nodes: list[str] = msgspec.field(default_factory=list)  # kind `pin`
    author: str
    reason: str
    created_at: float  # epoch seconds
    expires_at: float | None = None  # epoch seconds; None: until deleted

    def live(self, now: float) -> bool:
        return self.expires_at is None or self.expires_at > now


override_decoder = msgspec.json.Decoder(Override)


@dataclass(frozen=True, slots=True)
class OverrideSet:
    """The overrides in force: what the engine applies to every decision."""

    overrides: tuple[Override, ...] = ()
    drained: frozenset[str] = frozenset()
    pins: Mapping[str, frozenset[str]] = field(default_factory=dict)  # model -> nodes
    weights: Mapping[str, Mapping[str, float]] = field(default_factory=dict)  # model -> pool

    @classmethod
    def of(cls, overrides: Iterable[Override], now: float) -> OverrideSet:
        """The live overrides; of two on the same target, the newer wins."""
        live = sorted((o for o in overrides if o.live(now)), key=lambda o: o.created_at)
        drained: set[str] = set()
        pins: dict[str, frozenset[str]] = {}
        weights: dict[str, dict[str, float]] = {}
        for override in live:
            if override.kind == "drain":
                drained.add(override.target)
            elif override.kind == "pin":
                pins[override.target] = frozenset(override.nodes)
            else:
                weights.setdefault(override.target, {}).update(override.weights)
        return cls(tuple(live), frozenset(drained), pins, weights)
