"""The set of overrides in force, as every replica rebuilds it from the stored ones."""

from __future__ import annotations

from typing import Any

from api_router.routing.override_set import Override, OverrideSet

NOW = 1_000.0


def override(
    override_id: str, kind: Any, target: str, created_at: float, **fields: Any
) -> Override:
    return Override(
        id=override_id,
        kind=kind,
        target=target,
        author="k1",
        reason="r",
        created_at=created_at,
        **fields,
    )


def test_no_overrides_change_nothing() -> None:
    current = OverrideSet.of([], NOW)
    assert current == OverrideSet()
    assert (current.drained, dict(current.pins), dict(current.weights)) == (frozenset(), {}, {})


def test_each_kind_lands_where_the_engine_reads_it() -> None:
    current = OverrideSet.of(
        [
            override("o1", "drain", "node-a", 1.0),
            override("o2", "pin", "llama", 2.0, nodes=["node-b", "node-c"]),
            override("o3", "weights", "llama", 3.0, weights={"edge": 0.0, "gpu": 2.0}),
        ],
        NOW,
    )
    assert current.drained == frozenset({"node-a"})
    assert current.pins == {"llama": frozenset({"node-b", "node-c"})}
    assert current.weights == {"llama": {"edge": 0.0, "gpu": 2.0}}
    assert [o.id for o in current.overrides] == ["o1", "o2", "o3"]


def test_expired_overrides_are_left_out_even_before_redis_drops_them() -> None:
    current = OverrideSet.of(
        [
            override("gone", "drain", "node-a", 1.0, expires_at=NOW),  # ends exactly now
            override("kept", "drain", "node-b", 1.0, expires_at=NOW + 1),
            override("forever", "drain", "node-c", 1.0),
        ],
        NOW,
    )
    assert current.drained == frozenset({"node-b", "node-c"})
    assert [o.id for o in current.overrides] == ["kept", "forever"]


def test_of_two_overrides_on_one_target_the_newer_wins_whatever_the_stored_order() -> None:
    newer_pin = override("p2", "pin", "llama", 5.0, nodes=["node-b"])
    older_pin = override("p1", "pin", "llama", 4.0, nodes=["node-a"])
    newer_weights = override("w2", "weights", "llama", 7.0, weights={"edge": 3.0})
    older_weights = override("w1", "weights", "llama", 6.0, weights={"edge": 1.0, "gpu": 1.0})
    current = OverrideSet.of([newer_pin, newer_weights, older_pin, older_weights], NOW)
    assert current.pins == {"llama": frozenset({"node-b"})}
    # Weights merge pool by pool: the newer override's pools win, the others stay.
    assert current.weights == {"llama": {"edge": 3.0, "gpu": 1.0}}
    assert [o.id for o in current.overrides] == ["p1", "p2", "w1", "w2"]


def test_overrides_of_different_models_and_nodes_do_not_mix() -> None:
    current = OverrideSet.of(
        [
            override("a", "pin", "llama", 1.0, nodes=["node-a"]),
            override("b", "pin", "qwen", 2.0, nodes=["node-b"]),
            override("c", "drain", "node-a", 3.0),
            override("d", "drain", "node-b", 4.0),
        ],
        NOW,
    )
    assert current.pins == {"llama": frozenset({"node-a"}), "qwen": frozenset({"node-b"})}
    assert current.drained == frozenset({"node-a", "node-b"})
