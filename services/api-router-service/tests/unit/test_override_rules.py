"""What an admin may ask of routing: the request schema first, then the checks against the
nodes and pools the gateway knows (the same for the admin API and the CLI)."""

from __future__ import annotations

import time
from typing import Any

import msgspec
import pytest

from api_router.api.admin.routing_contract import DrainRequest, PinRequest, WeightsRequest
from api_router.config.policies import ModelPolicy, Policies
from api_router.config.settings import HealthSettings
from api_router.errors import ApiError
from api_router.routing.override_rules import (
    Change,
    drain_override,
    known_pools,
    pin_override,
    weights_override,
)
from api_router.routing.snapshot import RoutingSnapshot
from tests.support.stack import node_health

NOW = time.time()
SNAPSHOT = RoutingSnapshot.build(
    [node_health("node-a", pool="edge", last_seen=NOW), node_health("node-b", pool="gpu")],
    NOW,
    HealthSettings(),
)
# A pool no node announces yet, known from a route.
POLICIES = Policies(models={"llama": ModelPolicy(routes=[{"edge": 1.0}, {"cloud": 1.0}])})
CHANGE = Change("kadmin", "maintenance")


def refusal(call: Any, *args: Any, code: str = "conflict") -> str:
    """The message of the refusal; unknown pools and nodes are conflicts with the registry."""
    with pytest.raises(ApiError) as raised:
        call(*args)
    assert raised.value.code == code
    return raised.value.message


def test_pools_are_known_from_the_nodes_and_from_the_routes() -> None:
    assert known_pools(SNAPSHOT, None) == {"edge", "gpu"}
    assert known_pools(SNAPSHOT, POLICIES) == {"edge", "gpu", "cloud"}


def test_weights_become_an_override_by_the_author_for_the_model() -> None:
    before = time.time()
    override = weights_override(
        SNAPSHOT, POLICIES, "llama", {"edge": 0.0, "cloud": 2.0}, Change("kadmin", "slow", 60)
    )
    assert (override.kind, override.target, override.weights) == (
        "weights",
        "llama",
        {"edge": 0.0, "cloud": 2.0},
    )
    assert (override.author, override.reason, override.nodes) == ("kadmin", "slow", [])
    assert override.id.startswith("ovr_") and len(override.id) == 20
    assert before - 0.001 <= override.created_at <= time.time() + 0.001
    assert override.expires_at == pytest.approx(override.created_at + 60, abs=0.002)


def test_weights_on_unknown_pools_are_refused_naming_them() -> None:
    message = refusal(weights_override, SNAPSHOT, None, "llama", {"mars": 1, "edge": 1}, CHANGE)
    assert message == "unknown pool(s): mars"


def test_all_weights_zero_is_refused() -> None:
    message = refusal(
        weights_override,
        SNAPSHOT,
        None,
        "llama",
        {"edge": 0, "gpu": 0},
        CHANGE,
        code="invalid_request",
    )
    assert message == "all weights are zero: the model could go nowhere"


def test_a_pin_names_registered_nodes_once_each_in_order() -> None:
    override = pin_override(SNAPSHOT, "llama", ["node-b", "node-a", "node-b"], CHANGE)
    assert (override.kind, override.target, override.nodes) == (
        "pin",
        "llama",
        ["node-a", "node-b"],
    )
    assert override.expires_at is None  # no TTL: until deleted


def test_a_pin_or_drain_of_an_unknown_node_is_refused_naming_it() -> None:
    assert refusal(pin_override, SNAPSHOT, "llama", ["node-z", "node-a"], CHANGE) == (
        "unknown node(s): node-z"
    )
    assert refusal(drain_override, SNAPSHOT, "node-y", CHANGE) == "unknown node(s): node-y"


def test_a_drain_targets_the_node() -> None:
    override = drain_override(SNAPSHOT, "node-b", CHANGE)
    assert (override.kind, override.target, override.author) == ("drain", "node-b", "kadmin")


@pytest.mark.parametrize(
    ("kind", "body"),
    [
        (WeightsRequest, {"reason": "x", "weights": {"edge": -1}}),
        (WeightsRequest, {"reason": "x", "weights": {}}),
        (PinRequest, {"reason": "x", "nodes": []}),
        (PinRequest, {"reason": "x", "nodes": [""]}),
        (DrainRequest, {"reason": ""}),
        (DrainRequest, {"reason": "x" * 501}),
        (DrainRequest, {"reason": "x", "ttl_s": 0}),
        (DrainRequest, {"reason": "x", "ttl_s": 30 * 86_400 + 1}),
        (DrainRequest, {"reason": "x", "until": "tomorrow"}),
        (DrainRequest, {}),
    ],
)
def test_the_request_schema_refuses_what_no_rule_needs_to_see(
    kind: type[msgspec.Struct], body: dict[str, Any]
) -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert(body, kind)


def test_each_request_builds_its_kind_of_override_on_its_target() -> None:
    weights = msgspec.convert({"reason": "r", "weights": {"gpu": 1}, "ttl_s": 5}, WeightsRequest)
    pin = msgspec.convert({"reason": "r", "nodes": ["node-a"]}, PinRequest)
    drain = msgspec.convert({"reason": "r"}, DrainRequest)
    built = [
        weights.override(SNAPSHOT, POLICIES, "llama", "kadmin"),
        pin.override(SNAPSHOT, POLICIES, "llama", "kadmin"),
        drain.override(SNAPSHOT, POLICIES, "node-a", "kadmin"),
    ]
    assert [(o.kind, o.target, o.author, o.reason) for o in built] == [
        ("weights", "llama", "kadmin", "r"),
        ("pin", "llama", "kadmin", "r"),
        ("drain", "node-a", "kadmin", "r"),
    ]
    assert built[0].expires_at is not None and built[1].expires_at is None
