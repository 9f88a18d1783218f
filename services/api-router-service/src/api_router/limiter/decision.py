"""What admission decided about one limit of one request: the audit record of a limit.

Every non-plain outcome (queued, a denial, an admission without Redis) is appended to the
request's context, counted in ``limit_decisions_total{outcome,limit}`` and serialized into
the audit record with ``msgspec.to_builtins``.
"""

from __future__ import annotations

from typing import Literal

import msgspec

Outcome = Literal[
    "queued",  # over a rate, waited for the bucket, then admitted
    "rate_limited",  # 429: a request or token bucket is empty for longer than the queue wait
    "concurrency_limited",  # 429: max_concurrent requests already in flight
    "budget_exhausted",  # 402: the month's budget would be crossed
    "fail_open",  # Redis unreachable; admitted against the local in-process bucket
    "limiter_unavailable",  # 503: Redis unreachable and the plan fails closed
    "budget_unavailable",  # 503: Redis unreachable and the tenant has a budget
]
Scope = Literal["tenant", "key", "model"]


class LimitDecision(msgspec.Struct, frozen=True, kw_only=True):
    outcome: Outcome
    # "<scope>.<kind>": tenant.requests, key.tokens, model.concurrency, tenant.budget...
    limit: str
    scope: Scope
    plan: str
    tenant: str
    key_id: str
    model: str
    # The limit's size (bucket capacity, leases, budget per month in its unit) and what
    # was observed when it decided (tokens left in the bucket, leases held, spend so far).
    limit_value: float
    observed: float
    # Seconds the client should wait (rounded up); for `queued`, how long it waited.
    retry_after_s: int | None = None
