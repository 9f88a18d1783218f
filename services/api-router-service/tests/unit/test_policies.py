"""The policies file: what validation refuses, and how a plan resolves into checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from api_router.config.loader import ConfigError
from api_router.config.policies import load_policies
from api_router.keyspace import Keyspace
from api_router.limiter.limit_set import NoPlan, resolve

SAMPLE = Path(__file__).parents[2] / "configs" / "policies.sample.yaml"


def load(tmp_path: Path, tree: dict[str, Any]) -> Any:
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(tree))
    return load_policies(path)


def test_the_sample_is_valid_and_resolves() -> None:
    policies = load_policies(SAMPLE)
    limits = resolve(policies, Keyspace("x"), "acme", "k7d3f9a2b1c4e", "llama3.2")
    assert limits.plan_name == "pro"
    assert [c.limit for c in limits.checks] == [
        "tenant.requests",
        "tenant.tokens",
        "tenant.concurrency",
        "key.requests",
        "key.concurrency",
        "model.tokens",
        "model.concurrency",
    ]
    assert limits.checks[0].key == "x:limit:{acme}:tenant:requests"
    assert limits.checks[3].key == "x:limit:{acme}:key:k7d3f9a2b1c4e:requests"
    assert limits.checks[5].key == "x:limit:{acme}:model:llama3.2:tokens"
    assert limits.budget_key == "x:budget:{acme}"
    assert {c.key.split("}")[0] for c in limits.checks} == {"x:limit:{acme"}


@pytest.mark.parametrize(
    ("tree", "path", "reason"),
    [
        ({"tenants": {"a": {"plan": "gold"}}}, "tenants.a.plan", "no plan named 'gold'"),
        ({"plans": {"p": {"burst": 5}}}, "plans.p.burst", "needs requests_per_second"),
        ({"plans": {"p": {"max_concurrent": 0}}}, "plans.p.max_concurrent", "expected `int` >= 1"),
        ({"plans": {"p": {"rps": 1}}}, "plans.p.rps", "unknown setting"),
        (
            {"plans": {"p": {"models": {"m": {"burst": -1}}}}},
            "plans.p.models.m.burst",
            "expected `int` >= 1",
        ),
        (
            {"plans": {"p": {"budget": {"per_month": 5, "unit": "dollars"}}}},
            "plans.p.budget.unit",
            "invalid enum value 'dollars'",
        ),
        (
            {"plans": {"p": {"on_store_error": "ignore"}}},
            "plans.p.on_store_error",
            "invalid enum value 'ignore'",
        ),
        (
            {
                "plans": {"p": {"requests_per_second": 5}},
                "tenants": {"a": {"plan": "p", "keys": {"k": {"requests_per_second": 6}}}},
            },
            "tenants.a.keys.k.requests_per_second",
            "6.0 widens the plan's 5.0; keys only narrow",
        ),
    ],
)
def test_invalid_policies_name_the_path(
    tmp_path: Path, tree: dict[str, Any], path: str, reason: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        load(tmp_path, tree)
    assert raised.value.path == path
    assert raised.value.reason.startswith(reason), raised.value.reason


def test_an_unlisted_tenant_gets_the_default_plan_or_none(tmp_path: Path) -> None:
    policies = load(tmp_path, {"plans": {"default": {"max_concurrent": 2}}})
    assert resolve(policies, Keyspace(), "anyone", "k", "m").plan_name == "default"
    with pytest.raises(NoPlan):
        resolve(load(tmp_path, {"plans": {"p": {}}}), Keyspace(), "anyone", "k", "m")


def test_a_key_entry_never_widens_even_unchecked(tmp_path: Path) -> None:
    policies = load(
        tmp_path,
        {
            "plans": {"p": {"requests_per_second": 2, "burst": 4}},
            "tenants": {"a": {"plan": "p", "keys": {"k": {}}}},
        },
    )
    wide = {"requests_per_second": 50.0, "burst": 100, "max_concurrent": 9}
    key_limits = type(policies.tenants["a"].keys["k"])(**wide)
    tenants = {"a": type(policies.tenants["a"])(plan="p", keys={"k": key_limits})}
    import msgspec

    bypassed = msgspec.structs.replace(policies, tenants=tenants)
    checks = {c.limit: c for c in resolve(bypassed, Keyspace(), "a", "k", "m").checks}
    assert (checks["key.requests"].capacity, checks["key.requests"].rate_per_s) == (4, 2)
    assert checks["key.concurrency"].capacity == 9  # the plan sets none: nothing to exceed


def test_cost_units_round_up_to_millionths(tmp_path: Path) -> None:
    policies = load(
        tmp_path,
        {
            "plans": {"p": {"budget": {"per_month": 2.5, "unit": "cost"}}},
            "tenants": {"a": {"plan": "p"}},
            "models": {"m": {"prompt_price_per_1k": 0.0005, "completion_price_per_1k": 0.0015}},
        },
    )
    limits = resolve(policies, Keyspace(), "a", "k", "m")
    assert limits.budget_limit_units() == 2_500_000
    assert limits.budget_units(1, 0) == 1  # 0.0000005 is charged as one millionth
    assert limits.budget_units(1000, 1000) == 2000
    assert limits.amount_of(2000) == 0.002
