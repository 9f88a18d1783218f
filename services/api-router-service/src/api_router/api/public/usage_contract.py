"""The bodies of ``GET /v1/usage`` and the admins' tenant routes: a tenant's month to date
(requests, tokens, cost, per model), its budget and what is left, and its plan's limits."""

from __future__ import annotations

from typing import Literal

import msgspec

from api_router.config.policies import Plan, RateLimits
from api_router.limiter.limit_set import COST_UNIT, LimitSet
from api_router.limiter.month_usage import ModelMonth, TenantMonth


class BudgetReport(msgspec.Struct, frozen=True, kw_only=True):
    unit: Literal["tokens", "cost"]  # cost: in the currency of the model prices
    per_month: float  # the plan's budget now
    spent: float  # the month's spend, requests still in flight included
    remaining: float


class Limits(msgspec.Struct, frozen=True, kw_only=True):
    """Rate limits (null: none). ``burst``: the request bucket's size."""

    requests_per_second: float | None
    burst: int | None
    tokens_per_minute: int | None
    max_concurrent: int | None


class PlanLimits(Limits, frozen=True, kw_only=True):
    # Longest wait in the queue before a request over a rate is refused (0: never waits).
    queue_max_wait_ms: int
    # Tokens reserved for the completion when a request sends no max_tokens.
    default_reservation_tokens: int
    models: dict[str, Limits]  # per model, on top of the tenant's own


class ModelUsage(msgspec.Struct, frozen=True, kw_only=True):
    requests: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost: float


class UsageReport(msgspec.Struct, frozen=True, kw_only=True):
    """A tenant's calendar month (UTC). ``requests`` counts the requests a node answered
    (whole or in part) and was charged for; refusals and failures cost nothing."""

    tenant: str
    month: str  # YYYY-MM
    plan: str | None  # null: no policies file, or no plan for this tenant
    requests: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost: float
    budget: BudgetReport | None
    limits: PlanLimits | None
    models: dict[str, ModelUsage]


class TenantSummary(msgspec.Struct, frozen=True, kw_only=True):
    tenant: str
    plan: str | None
    keys: int  # keys issued (revoked ones too)
    requests: int
    total_tokens: int
    cost: float
    budget: BudgetReport | None


class TenantList(msgspec.Struct, frozen=True):
    month: str
    data: list[TenantSummary]


def usage_report(tenant: str, month: TenantMonth, limits: LimitSet | None) -> UsageReport:
    total = month.total()
    plan = limits.plan if limits is not None else None
    return UsageReport(
        tenant=tenant,
        month=month.month,
        plan=limits.plan_name if limits is not None else None,
        requests=total.requests,
        prompt_tokens=total.prompt_tokens,
        completion_tokens=total.completion_tokens,
        total_tokens=total.prompt_tokens + total.completion_tokens,
        cost=_currency(total.cost_units),
        budget=budget_report(month, limits),
        limits=None if plan is None else _plan_limits(plan),
        models={name: _model_usage(counts) for name, counts in month.models.items()},
    )


def tenant_summary(
    tenant: str, keys: int, month: TenantMonth, limits: LimitSet | None
) -> TenantSummary:
    total = month.total()
    return TenantSummary(
        tenant=tenant,
        plan=limits.plan_name if limits is not None else None,
        keys=keys,
        requests=total.requests,
        total_tokens=total.prompt_tokens + total.completion_tokens,
        cost=_currency(total.cost_units),
        budget=budget_report(month, limits),
    )


def budget_report(month: TenantMonth, limits: LimitSet | None) -> BudgetReport | None:
    if limits is None or limits.budget is None:
        return None
    per_month = limits.budget_amount()
    spent = limits.amount_of(month.budget_units)
    return BudgetReport(
        unit=limits.budget.unit,
        per_month=per_month,
        spent=spent,
        remaining=round(max(0.0, per_month - spent), 6),
    )


def _plan_limits(plan: Plan) -> PlanLimits:
    return PlanLimits(
        **msgspec.structs.asdict(_limits(plan)),
        queue_max_wait_ms=plan.queue_max_wait_ms,
        default_reservation_tokens=plan.default_reservation_tokens,
        models={model: _limits(limits) for model, limits in sorted(plan.models.items())},
    )


def _limits(limits: RateLimits) -> Limits:
    return Limits(
        requests_per_second=limits.requests_per_second,
        burst=limits.request_capacity(),
        tokens_per_minute=limits.tokens_per_minute,
        max_concurrent=limits.max_concurrent,
    )


def _model_usage(counts: ModelMonth) -> ModelUsage:
    return ModelUsage(
        requests=counts.requests,
        prompt_tokens=counts.prompt_tokens,
        completion_tokens=counts.completion_tokens,
        total_tokens=counts.prompt_tokens + counts.completion_tokens,
        cost=_currency(counts.cost_units),
    )


def _currency(units: int) -> float:
    return units / COST_UNIT
