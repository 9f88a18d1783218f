"""The limits that apply to one (tenant, key, model): a plan resolved into script checks.

Resolution is pure and cached per policies version, so admission does one dictionary
lookup before its one Redis round trip.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, TypeVar

from api_router.config.policies import DEFAULT_PLAN, Budget, ModelPolicy, Plan, Policies, RateLimits
from api_router.keyspace import Keyspace

_N = TypeVar("_N", int, float)
CheckKind = Literal["requests", "tokens", "lease"]
# Cost budgets are kept in millionths of the currency, so Redis adds integers exactly.
COST_UNIT = 1_000_000


@dataclass(frozen=True, slots=True)
class Check:
    """One rate or concurrency limit: a Redis key and how the script treats it."""

    limit: str  # "<scope>.<kind>", e.g. "tenant.requests", "key.tokens", "model.concurrency"
    kind: CheckKind
    key: str
    capacity: int  # bucket size, or leases at once
    rate_per_s: float  # bucket refill; 0 for leases

    @property
    def scope(self) -> str:
        return self.limit.partition(".")[0]


@dataclass(frozen=True, slots=True)
class LimitSet:
    plan_name: str
    plan: Plan
    checks: tuple[Check, ...]
    budget: Budget | None
    budget_key: str
    prices: ModelPolicy

    @property
    def unlimited(self) -> bool:
        return not self.checks and self.budget is None

    def budget_units(self, prompt_tokens: int, completion_tokens: int) -> int:
        """What these tokens cost against the budget, in its stored unit (rounded up)."""
        if self.budget is None:
            return 0
        if self.budget.unit == "tokens":
            return prompt_tokens + completion_tokens
        return cost_units(self.prices, prompt_tokens, completion_tokens)

    def budget_limit_units(self) -> int:
        return int(self.budget_amount() * self._scale())

    def budget_amount(self) -> float:
        """The budget per month in its own unit (tokens, or the currency)."""
        return self.budget.per_month if self.budget is not None else 0.0

    def amount_of(self, units: int) -> float:
        """Stored budget units in the budget's own unit."""
        return units / self._scale()

    def _scale(self) -> int:
        return COST_UNIT if self.budget is not None and self.budget.unit == "cost" else 1


def cost_units(prices: ModelPolicy, prompt_tokens: int, completion_tokens: int) -> int:
    """What these tokens cost at ``prices`` in millionths of the currency, rounded up: the
    one charge that a cost budget, the month's usage counters and the usage record carry."""
    # Rounded first to shed float noise (0.0016 * 1e6 is 1600.0000000000002), then up.
    return math.ceil(round(prices.cost(prompt_tokens, completion_tokens) * COST_UNIT, 6))


class NoPlan(Exception):
    """The tenant has no entry and the policies define no ``default`` plan."""


def resolve(policies: Policies, keys: Keyspace, tenant: str, key_id: str, model: str) -> LimitSet:
    entry = policies.tenants.get(tenant)
    plan_name = entry.plan if entry is not None else DEFAULT_PLAN
    plan = policies.plans.get(plan_name)
    if plan is None:
        raise NoPlan(tenant)
    checks = list(_checks(keys, tenant, "tenant", "tenant", plan))
    narrowed = entry.keys.get(key_id) if entry is not None else None
    if narrowed is not None:
        # A key limit is enforced only where the key narrows: an un-narrowed key limit would
        # equal the tenant's and never bind first.
        checks += _checks(keys, tenant, f"key:{key_id}", "key", _narrow(narrowed, plan))
    model_limits = plan.models.get(model)
    if model_limits is not None:
        checks += _checks(keys, tenant, f"model:{model}", "model", model_limits)
    prices = policies.prices(model)
    return LimitSet(plan_name, plan, tuple(checks), plan.budget, keys.budget(tenant), prices)


def _checks(
    keys: Keyspace, tenant: str, scope_key: str, scope: str, limits: RateLimits
) -> list[Check]:
    checks = []
    capacity = limits.request_capacity()
    if limits.requests_per_second is not None and capacity is not None:
        checks.append(
            Check(
                f"{scope}.requests",
                "requests",
                keys.limit(tenant, scope_key, "requests"),
                capacity,
                limits.requests_per_second,
            )
        )
    if limits.tokens_per_minute is not None:
        checks.append(
            Check(
                f"{scope}.tokens",
                "tokens",
                keys.limit(tenant, scope_key, "tokens"),
                limits.tokens_per_minute,
                limits.tokens_per_minute / 60,
            )
        )
    if limits.max_concurrent is not None:
        checks.append(
            Check(
                f"{scope}.concurrency",
                "lease",
                keys.limit(tenant, scope_key, "lease"),
                limits.max_concurrent,
                0.0,
            )
        )
    return checks


def _narrow(key: RateLimits, plan: RateLimits) -> RateLimits:
    """The limits the key sets, each no wider than the plan's: the file check refuses a
    widening key, and this keeps that true whatever the file says."""
    rps = _at_most(key.requests_per_second, plan.requests_per_second)
    return RateLimits(
        requests_per_second=rps,
        burst=None if rps is None else _at_most(key.request_capacity(), plan.request_capacity()),
        tokens_per_minute=_at_most(key.tokens_per_minute, plan.tokens_per_minute),
        max_concurrent=_at_most(key.max_concurrent, plan.max_concurrent),
    )


def _at_most(value: _N | None, ceiling: _N | None) -> _N | None:
    return value if value is None or ceiling is None else min(value, ceiling)
