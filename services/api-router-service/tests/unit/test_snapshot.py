"""Node choice: a pure function of a health snapshot."""

from __future__ import annotations

import pytest

from api_router.config.settings import HealthSettings
from api_router.errors import ApiError
from api_router.routing.snapshot import RoutingSnapshot, node_state, rank
from tests.support.stack import node_health

NOW = 1_000_000.0
LIMITS = HealthSettings()


def snapshot(*nodes: object) -> RoutingSnapshot:
    return RoutingSnapshot.build(nodes, NOW, LIMITS)  # type: ignore[arg-type]


def node(node_id: str, **fields: object) -> object:
    return node_health(node_id, **{"last_seen": NOW - 1, **fields})


def chosen(snap: RoutingSnapshot, model: str) -> list[str]:
    return [n.node_id for n in snap.candidates(model)]


def test_a_node_with_the_model_loaded_comes_first_even_when_busier() -> None:
    snap = snapshot(
        node("idle", models_available=["m"], ram_percent=10.0),
        node("warm", models_loaded=["m"], models_available=["m"], ram_percent=80.0, inflight=1),
    )
    assert chosen(snap, "m") == ["warm", "idle"]


def test_among_warm_nodes_the_least_busy_first_then_lowest_ram() -> None:
    snap = snapshot(
        node("busy", models_loaded=["m"], inflight=2, max_concurrency=2, ram_percent=10.0),
        node("half", models_loaded=["m"], inflight=1, max_concurrency=2, ram_percent=70.0),
        node("free-hi", models_loaded=["m"], inflight=0, ram_percent=60.0),
        node("free-lo", models_loaded=["m"], inflight=0, ram_percent=20.0),
    )
    assert chosen(snap, "m") == ["free-lo", "free-hi", "half", "busy"]


def test_without_a_warm_node_the_lowest_ram_node_first() -> None:
    snap = snapshot(
        node("a", ram_percent=70.0), node("b", ram_percent=30.0), node("c", ram_percent=50.0)
    )
    assert chosen(snap, "m") == ["b", "c", "a"]


@pytest.mark.parametrize(
    ("fields", "state"),
    [
        ({"last_seen": NOW - 15.5}, "stale"),
        ({"available": False}, "unavailable"),
        ({"temp_celsius": 75.1}, "too_hot"),
        ({"ram_percent": 90.1}, "memory_pressure"),
        ({"temp_celsius": 75.0, "ram_percent": 90.0, "last_seen": NOW - 15}, "healthy"),
        ({"temp_celsius": None}, "healthy"),
    ],
)
def test_node_states_at_and_past_the_thresholds(fields: dict[str, object], state: str) -> None:
    values = {"last_seen": NOW - 1, **fields}
    assert node_state(node_health("n", **values), NOW, LIMITS) == state


def test_unhealthy_nodes_are_never_candidates_even_when_warm() -> None:
    snap = snapshot(
        node("hot", models_loaded=["m"], temp_celsius=80.0),
        node("stale", models_loaded=["m"], last_seen=NOW - 60),
        node("ok", ram_percent=89.0),
    )
    assert chosen(snap, "m") == ["ok"]


def test_an_unknown_model_is_not_found() -> None:
    with pytest.raises(ApiError) as caught:
        snapshot(node("a")).candidates("other")
    assert caught.value.code == "model_not_found"


def test_a_known_model_without_a_healthy_node_is_no_capacity() -> None:
    with pytest.raises(ApiError) as caught:
        snapshot(node("a", temp_celsius=90.0)).candidates("m")
    assert caught.value.code == "no_capacity"


def test_ollama_latest_tags_answer_to_the_bare_name() -> None:
    snap = snapshot(node("a", models_available=["llama3.2:latest"], models_loaded=[]))
    assert chosen(snap, "llama3.2") == ["a"]
    assert chosen(snap, "llama3.2:latest") == ["a"]
    with pytest.raises(ApiError):
        snap.candidates("llama3.2:1b")


def test_counts_by_state_and_fresh_nodes() -> None:
    snap = snapshot(node("a"), node("b", last_seen=0.0), node("c", available=False))
    assert snap.state_counts() == {"healthy": 1, "stale": 1, "unavailable": 1}
    assert snap.fresh_count() == 2


def test_rank_is_stable_for_equal_nodes() -> None:
    twins = [node_health(n, last_seen=NOW) for n in ("b", "a", "c")]
    assert [n.node_id for n in rank([], twins)] == ["a", "b", "c"]
