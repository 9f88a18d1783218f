"""Admission: ``acquire`` checks and debits every limit in one script and one round trip;
``settle`` replaces the reservations with actual usage once the request has ended, and
counts what the request was charged in its tenant's month (``keyspace.budget``: the hash
the budget is enforced on, so ``GET /v1/usage`` reads the very figures admission checks).

When Redis cannot be asked within ``limits.store_timeout_s``: budgets fail closed (503
``budget_unavailable``); rate and concurrency limits follow the plan's ``on_store_error``
(503 ``limiter_unavailable``, or admission against a local bucket at the plan's rate).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from api_router.chat import Usage
from api_router.errors import ApiError, StoreUnavailable
from api_router.keyspace import USAGE_MONTHS_KEPT, USAGE_TTL_S, Keyspace
from api_router.limiter.budget_usage import BudgetUsage
from api_router.limiter.decision import LimitDecision, Outcome
from api_router.limiter.denial import denial_error
from api_router.limiter.limit_set import COST_UNIT, LimitSet, NoPlan, cost_units
from api_router.limiter.local_bucket import LocalBuckets
from api_router.limiter.policy_source import PolicySource
from api_router.limiter.rate_limit_headers import rate_limit_headers, tightest, with_budget
from api_router.limiter.settlements import Settlement, Settlements
from api_router.redis_store import Redis, lua_script, store_errors

log = logging.getLogger(__name__)

DecisionSink = Callable[[LimitDecision], None]

_ADMITTED, _QUEUED, _DENIED, _OVER_BUDGET = 0, 1, 2, 3


@dataclass(frozen=True, slots=True)
class AdmissionRequest:
    request_id: str
    tenant: str
    key_id: str
    model: str
    prompt_tokens: int  # an estimate (token_estimate.py)
    max_tokens: int | None


@dataclass(slots=True)
class Grant:
    """What one admitted request holds until it is settled."""

    request: AdmissionRequest
    limits: LimitSet | None = None
    reserved_tokens: int = 0
    budget_units: int = 0
    month: str = ""
    in_store: bool = False  # False: nothing was debited in Redis, nothing to settle
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def plan(self) -> str | None:
        return self.limits.plan_name if self.limits is not None else None

    def charge(self, usage: Usage) -> int:
        """What ``usage`` costs at the model's prices, in millionths of the currency."""
        if self.limits is None:
            return 0
        return cost_units(self.limits.prices, usage.prompt_tokens, usage.completion_tokens)

    def cost(self, usage: Usage) -> float:
        """The same charge in the currency, as the usage record carries it."""
        return self.charge(usage) / COST_UNIT


class Admission:
    def __init__(
        self,
        redis: Redis,
        settle_redis: Redis,
        keys: Keyspace,
        policies: PolicySource,
        lease_ms: int,
        budgets: BudgetUsage | None = None,
    ) -> None:
        """``redis`` answers within the store timeout (admission); ``settle_redis`` is the
        ordinary client, since settlement is off the response path and may take longer.
        ``budgets`` is told the tenants with a budget, for the metrics."""
        month = lua_script(__package__, "calendar_month")
        self._admit = redis.register_script(month + lua_script(__package__, "admit"))
        settle = settle_redis.register_script(month + lua_script(__package__, "settle"))
        self._settlements = Settlements(settle_redis, settle)
        self._keys = keys
        self._policies = policies
        self._lease_ms = lease_ms
        self._local = LocalBuckets()
        self._budgets = budgets

    async def acquire(self, request: AdmissionRequest, record: DecisionSink) -> Grant:
        """Admit ``request`` (waiting in the queue if its plan allows) or raise the denial."""
        try:
            limits = self._policies.limits_for(request.tenant, request.key_id, request.model)
        except NoPlan:
            raise ApiError("forbidden", f"tenant {request.tenant!r} has no plan") from None
        if limits is None or limits.unlimited:
            return Grant(request, limits)
        if limits.budget is not None and self._budgets is not None:
            self._budgets.watch(request.tenant, limits)
        completion = request.max_tokens
        if completion is None:
            completion = limits.plan.default_reservation_tokens
        grant = Grant(
            request,
            limits,
            reserved_tokens=request.prompt_tokens + completion,
            budget_units=limits.budget_units(request.prompt_tokens, completion),
        )
        try:
            with store_errors("the limiter"):
                result = await self._admit(keys=_keys(limits), args=self._args(grant))
        except StoreUnavailable:
            return self._without_store(grant, limits, record)
        code, index, millis, observed, month = (
            int(result[0]),
            int(result[1]),
            int(result[2]),
            int(result[3]),
            result[4].decode(),
        )
        grant.month = month
        if code == _OVER_BUDGET:
            spent = limits.amount_of(observed)
            decision = _decision(
                grant, "budget_exhausted", "tenant.budget", limits.budget_amount(), spent, None
            )
            record(decision)
            reserves = limits.amount_of(grant.budget_units)
            hint = (
                f"; this request reserves up to {reserves:g} (its prompt and max_tokens): "
                "a lower max_tokens may fit"
            )
            raise denial_error(decision, {}, hint if spent < limits.budget_amount() else "")
        if code == _DENIED:
            check = limits.checks[index - 1]
            outcome: Outcome = "concurrency_limited" if check.kind == "lease" else "rate_limited"
            retry = None if millis < 0 else max(1, -(-millis // 1000))
            decision = _decision(grant, outcome, check.limit, check.capacity, observed, retry)
            record(decision)
            raise denial_error(decision, rate_limit_headers(check, 0, retry or 0))
        grant.in_store = True
        pairs = [(int(result[i]), int(result[i + 1])) for i in range(6, len(result), 2)]
        now = dt.datetime.now(dt.UTC)
        grant.headers = with_budget(tightest(limits.checks, pairs), limits, int(result[5]), now)
        if code == _QUEUED:
            check = limits.checks[index - 1]
            record(
                _decision(
                    grant, "queued", check.limit, check.capacity, observed, -(-millis // 1000)
                )
            )
            try:
                await asyncio.sleep(millis / 1000)
            except BaseException:
                self.settle(grant, None, accepted=False)
                raise
        return grant

    def settle(self, grant: Grant, usage: Usage | None, *, accepted: bool) -> None:
        """Replace the reservations with ``usage`` (None: nothing was generated), off the
        response path (queued for the next batch of ``Settlements``). ``accepted``: a
        worker took the job (else the request slot is given back too). A request that
        was charged tokens is counted in its tenant's month, whatever its limits."""
        keys: list[str] = []
        args: list[str | int] = [USAGE_TTL_S, USAGE_MONTHS_KEPT]
        if grant.in_store and grant.limits is not None:
            self._settlement(grant, grant.limits, usage, accepted, keys, args)
        if usage is not None:
            request = grant.request
            keys.append(self._keys.budget(request.tenant))
            counts = f"{usage.prompt_tokens} {usage.completion_tokens} {grant.charge(usage)}"
            args += ["u", grant.month, request.model, counts]
        if keys:
            self._settlements.add(Settlement(grant.request.request_id, keys, args))

    async def settled(self, timeout_s: float = 2.0) -> None:
        """Wait for the settlements scheduled so far (shutdown; tests)."""
        await self._settlements.written(timeout_s)

    async def aclose(self) -> None:
        """Let pending settlements reach Redis before its client closes."""
        await self.settled()

    def _args(self, grant: Grant) -> list[str | int | float]:
        limits = grant.limits
        assert limits is not None
        args: list[str | int | float] = [
            grant.request.request_id,
            self._lease_ms,
            limits.plan.queue_max_wait_ms,
            limits.budget_limit_units(),
            grant.budget_units,
            USAGE_TTL_S,
        ]
        for check in limits.checks:
            if check.kind == "lease":
                args += ["l", check.capacity, 0, 1]
            else:
                cost = 1 if check.kind == "requests" else grant.reserved_tokens
                args += ["b", check.capacity, repr(check.rate_per_s), cost]
        return args

    def _settlement(
        self,
        grant: Grant,
        limits: LimitSet,
        usage: Usage | None,
        accepted: bool,
        keys: list[str],
        args: list[str | int],
    ) -> None:
        """Add the adjustments of the reservations to ``keys`` and ``args``."""
        used = usage.total_tokens if usage is not None else 0
        for check in limits.checks:
            if check.kind == "lease":
                keys.append(check.key)
                args += ["l", grant.request.request_id, 0, 0]
                continue
            if check.kind == "requests":
                delta = 0 if accepted else 1
            else:
                delta = grant.reserved_tokens - used
            if delta:
                keys.append(check.key)
                args += ["b", check.capacity, repr(check.rate_per_s), delta]
        if limits.budget is not None:
            spent = 0
            if usage is not None:
                spent = limits.budget_units(usage.prompt_tokens, usage.completion_tokens)
            if spent != grant.budget_units:
                keys.append(limits.budget_key)
                args += ["g", grant.month, spent - grant.budget_units, "-"]

    def _without_store(self, grant: Grant, limits: LimitSet, record: DecisionSink) -> Grant:
        plan = limits.plan
        if limits.budget is not None:
            decision = _decision(
                grant, "budget_unavailable", "tenant.budget", limits.budget_amount(), 0, 1
            )
            record(decision)
            raise denial_error(decision, {})
        if plan.on_store_error == "fail_closed":
            decision = _decision(grant, "limiter_unavailable", "tenant.requests", 0, 0, 1)
            record(decision)
            raise denial_error(decision, {})
        capacity = plan.request_capacity()
        admitted = (
            capacity is None
            or plan.requests_per_second is None
            or self._local.take(grant.request.tenant, capacity, plan.requests_per_second)
        )
        outcome: Outcome = "fail_open" if admitted else "rate_limited"
        decision = _decision(
            grant, outcome, "tenant.requests", capacity or 0, 0, None if admitted else 1
        )
        record(decision)
        log.warning(
            "limiter store unavailable; local limit applied",
            extra={
                "tenant": grant.request.tenant,
                "key_id": grant.request.key_id,
                "outcome": outcome,
            },
        )
        if not admitted:
            raise denial_error(decision, {})
        return grant


def _keys(limits: LimitSet) -> list[str]:
    return [*(check.key for check in limits.checks), limits.budget_key]


def _decision(
    grant: Grant,
    outcome: Outcome,
    limit: str,
    limit_value: float,
    observed: float,
    retry: int | None,
) -> LimitDecision:
    request = grant.request
    scope = limit.partition(".")[0]
    return LimitDecision(
        outcome=outcome,
        limit=limit,
        scope="key" if scope == "key" else "model" if scope == "model" else "tenant",
        plan=grant.plan or "",
        tenant=request.tenant,
        key_id=request.key_id,
        model=request.model,
        limit_value=limit_value,
        observed=observed,
        retry_after_s=retry,
    )
