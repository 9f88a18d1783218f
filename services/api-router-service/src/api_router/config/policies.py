"""The policies file: plans, the tenants assigned to them, and per-model prices.

``configs/policies.sample.yaml`` documents every field. The file is separate from the router
configuration because it changes at run time (hot reload) and belongs to whoever sells the
plans, not to whoever runs the gateway. ``routes`` under ``models`` (the entry ``*`` for
models without their own) are the ordered failover tiers of pools the routing engine uses;
``auth`` under ``tenants`` says whether a tenant must sign.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from api_router.config.loader import ConfigError, config_error, read_yaml

PositiveRate = Annotated[float, msgspec.Meta(gt=0)]
PositiveInt = Annotated[int, msgspec.Meta(ge=1)]
Price = Annotated[float, msgspec.Meta(ge=0)]
Name = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9._-]{1,64}$")]
Weight = Annotated[float, msgspec.Meta(ge=0)]
# One failover tier: pool name -> weight.
Tier = dict[Name, Weight]

# Tenants without an entry get the plan of this name, if the file defines one; else 403.
DEFAULT_PLAN = "default"
# Models without routes of their own use the routes of this entry.
DEFAULT_ROUTE = "*"


class _Entry(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    pass


class RateLimits(_Entry, frozen=True):
    """Limits a plan sets per tenant, per tenant and model, or a key narrows. None: no limit."""

    # Request token bucket: refills at this rate, holds at most `burst` (default: the rate,
    # rounded up).
    requests_per_second: PositiveRate | None = None
    burst: PositiveInt | None = None
    # LLM token bucket: prompt estimate plus max_tokens are reserved on admission.
    tokens_per_minute: PositiveInt | None = None
    # Requests in flight at once.
    max_concurrent: PositiveInt | None = None

    def request_capacity(self) -> int | None:
        if self.requests_per_second is None:
            return None
        return self.burst if self.burst is not None else max(1, -int(-self.requests_per_second))


class Budget(_Entry, frozen=True):
    """Spend allowed per calendar month (UTC), in LLM tokens or in cost (model prices)."""

    per_month: PositiveRate
    unit: Literal["tokens", "cost"]


class Plan(RateLimits, frozen=True):
    budget: Budget | None = None
    # Reserved for the completion when a request sends no max_tokens.
    default_reservation_tokens: PositiveInt = 256
    # A request over a rate waits for the bucket when it refills within this; 0: never wait.
    queue_max_wait_ms: Annotated[int, msgspec.Meta(ge=0, le=60_000)] = 0
    # Rate and concurrency limits when Redis cannot be asked; budgets always fail closed.
    on_store_error: Literal["fail_open", "fail_closed"] = "fail_open"
    # Limits per tenant and model, on top of the tenant's own.
    models: dict[str, RateLimits] = msgspec.field(default_factory=dict)


class Tenant(_Entry, frozen=True):
    plan: Name
    # signature_required: this tenant's keys must sign every request (RFC 9421); their
    # API keys alone are refused. A key's own `auth` can only make this stricter.
    auth: Literal["signature_required", "signature_or_key"] = "signature_or_key"
    # Per key id: limits that narrow the plan's for that key (never widen them).
    keys: dict[str, RateLimits] = msgspec.field(default_factory=dict)


class ModelPolicy(_Entry, frozen=True):
    # Prices in the budget's currency, for cost budgets and usage records.
    prompt_price_per_1k: Price = 0.0
    completion_price_per_1k: Price = 0.0
    # Ordered failover tiers, each pool -> weight; none: every pool, one tier, equal weights.
    routes: list[Tier] | None = None

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (
            prompt_tokens * self.prompt_price_per_1k
            + completion_tokens * self.completion_price_per_1k
        ) / 1000


class Policies(_Entry, frozen=True):
    plans: dict[Name, Plan] = msgspec.field(default_factory=dict)
    tenants: dict[Name, Tenant] = msgspec.field(default_factory=dict)
    models: dict[str, ModelPolicy] = msgspec.field(default_factory=dict)

    def prices(self, model: str) -> ModelPolicy:
        """The model's prices, else the ``default`` entry's, else free."""
        return self.models.get(model) or self.models.get("default") or ModelPolicy()

    def routes(self, model: str) -> list[Tier] | None:
        """The model's failover tiers, else the ``*`` entry's; None: no routing policy."""
        own = self.models.get(model)
        if own is not None and own.routes is not None:
            return own.routes
        fallback = self.models.get(DEFAULT_ROUTE)
        return fallback.routes if fallback is not None else None


def load_policies(path: str | Path) -> Policies:
    """Read and validate the policies file; ``ConfigError`` names the path at fault."""
    tree = read_yaml(Path(path))
    try:
        policies = msgspec.convert(tree, Policies, strict=False)
    except msgspec.ValidationError as exc:
        raise _named(tree, config_error(str(exc))) from None
    check_policies(policies)
    return policies


_SECTIONS: dict[str, type[_Entry]] = {"plans": Plan, "tenants": Tenant, "models": ModelPolicy}


def _named(
    tree: dict[str, Any], error: ConfigError, sections: dict[str, type[_Entry]] = _SECTIONS
) -> ConfigError:
    """msgspec says ``plans[...].burst``; find which entry, so the path reads ``plans.p.burst``."""
    for section, entry_type in sections.items():
        entries = tree.get(section)
        if not isinstance(entries, dict):
            continue
        for name, entry in entries.items():
            where = f"{section}.{name}"
            try:
                msgspec.convert(entry, entry_type, strict=False)
            except msgspec.ValidationError as exc:
                inner = config_error(str(exc))
                if (
                    section == "plans"
                    and isinstance(entry, dict)
                    and inner.path.startswith("models")
                ):
                    inner = _named({"models": entry.get("models")}, inner, {"models": RateLimits})
                return ConfigError(f"{where}.{inner.path}" if inner.path else where, inner.reason)
    return error


def check_policies(policies: Policies) -> None:
    """What the schema cannot say: plans exist, bursts have rates, keys only narrow."""
    for name, plan in policies.plans.items():
        _check_limits(f"plans.{name}", plan)
        for model, limits in plan.models.items():
            _check_limits(f"plans.{name}.models.{model}", limits)
    for model, entry in policies.models.items():
        for number, tier in enumerate(entry.routes or ()):
            if not any(weight > 0 for weight in tier.values()):
                raise ConfigError(
                    f"models.{model}.routes[{number}]", "needs a pool with a positive weight"
                )
    for name, tenant in policies.tenants.items():
        tenant_plan = policies.plans.get(tenant.plan)
        if tenant_plan is None:
            raise ConfigError(f"tenants.{name}.plan", f"no plan named {tenant.plan!r}")
        for key_id, limits in tenant.keys.items():
            where = f"tenants.{name}.keys.{key_id}"
            _check_limits(where, limits)
            _check_narrows(where, limits, tenant_plan)


def _check_limits(where: str, limits: RateLimits) -> None:
    if limits.burst is not None and limits.requests_per_second is None:
        raise ConfigError(f"{where}.burst", "needs requests_per_second")


def _check_narrows(where: str, key: RateLimits, plan: RateLimits) -> None:
    pairs = (
        ("requests_per_second", key.requests_per_second, plan.requests_per_second),
        ("burst", key.request_capacity(), plan.request_capacity()),
        ("tokens_per_minute", key.tokens_per_minute, plan.tokens_per_minute),
        ("max_concurrent", key.max_concurrent, plan.max_concurrent),
    )
    for field, narrowed, planned in pairs:
        if narrowed is not None and planned is not None and narrowed > planned:
            raise ConfigError(
                f"{where}.{field}", f"{narrowed} widens the plan's {planned}; keys only narrow"
            )
