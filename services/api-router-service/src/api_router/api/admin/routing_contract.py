"""Request bodies of the admin routing API (``/v1/admin/routing``); ``api-router routing``
builds the same ones from its arguments. The answers are ``Override`` (routing/override_set)
and ``RoutingView`` (routing/routing_view)."""

from __future__ import annotations

from typing import Annotated

import msgspec

from api_router.config.policies import Policies
from api_router.routing.override_rules import (
    Change,
    drain_override,
    pin_override,
    weights_override,
)
from api_router.routing.override_set import Override, Weight
from api_router.routing.snapshot import RoutingSnapshot

Reason = Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
Ttl = Annotated[float, msgspec.Meta(gt=0, le=30 * 86_400)]
NodeId = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]


class _ChangeRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    reason: Reason
    ttl_s: Ttl | None = None  # the override expires by itself after this long

    def change(self, author: str) -> Change:
        return Change(author, self.reason, self.ttl_s)


# The schema's way of saying "not all zero" (weights_override refuses that with a 400).
_SOME_WEIGHT_ABOVE_ZERO = {"not": {"additionalProperties": {"maximum": 0}}}


class WeightsRequest(_ChangeRequest, frozen=True):
    weights: Annotated[
        dict[str, Weight],
        msgspec.Meta(min_length=1, extra_json_schema=_SOME_WEIGHT_ABOVE_ZERO),
    ]

    def override(
        self, snapshot: RoutingSnapshot, policies: Policies | None, model: str, author: str
    ) -> Override:
        return weights_override(snapshot, policies, model, self.weights, self.change(author))


class PinRequest(_ChangeRequest, frozen=True):
    nodes: Annotated[list[NodeId], msgspec.Meta(min_length=1)]

    def override(
        self, snapshot: RoutingSnapshot, policies: Policies | None, model: str, author: str
    ) -> Override:
        return pin_override(snapshot, model, self.nodes, self.change(author))


class DrainRequest(_ChangeRequest, frozen=True):
    def override(
        self, snapshot: RoutingSnapshot, policies: Policies | None, node: str, author: str
    ) -> Override:
        return drain_override(snapshot, node, self.change(author))


# Each asks for one kind of override, on the target its path (or command) names.
OverrideRequest = WeightsRequest | PinRequest | DrainRequest
