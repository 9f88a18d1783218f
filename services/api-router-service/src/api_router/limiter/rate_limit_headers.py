"""The IETF ``RateLimit-Policy`` and ``RateLimit`` fields (draft-ietf-httpapi-ratelimit-headers).

Both name the tightest limit of the request: the one with the smallest share left.
``RateLimit-Policy: "tenant.requests";q=10;w=2`` says the quota (a bucket of 10 that refills
in 2 s); ``RateLimit: "tenant.requests";r=3;t=1`` says 3 are left and the bucket is full
again in 1 s. Concurrency limits carry no window. A tenant with a monthly budget gets it as
a second item, ``"tenant.budget"``: the quota in the budget's stored unit (tokens, or
millionths of the currency), the calendar month as the window, what is left and the
seconds until the month ends.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

from api_router.limiter.limit_set import Check, LimitSet


def window_s(check: Check) -> int | None:
    if check.kind == "lease":
        return None
    return max(1, -int(-check.capacity // check.rate_per_s))


def rate_limit_headers(check: Check, remaining: int, reset_s: int) -> dict[str, str]:
    window = window_s(check)
    policy = f'"{check.limit}";q={check.capacity}' + (f";w={window}" if window else "")
    state = f'"{check.limit}";r={max(0, remaining)}' + (f";t={reset_s}" if window else "")
    return {"RateLimit-Policy": policy, "RateLimit": state}


def tightest(checks: Sequence[Check], remaining: Sequence[tuple[int, int]]) -> dict[str, str]:
    """Headers for the check with the smallest share left; ``remaining`` is (r, t) per check."""
    if not checks:
        return {}
    index = min(range(len(checks)), key=lambda i: remaining[i][0] / checks[i].capacity)
    return rate_limit_headers(checks[index], *remaining[index])


def with_budget(
    headers: Mapping[str, str], limits: LimitSet, spent_units: int, now: dt.datetime
) -> dict[str, str]:
    """``headers`` with the tenant's budget added as the last item of each field;
    ``spent_units``: the month's spend so far, in the budget's stored unit."""
    if limits.budget is None:
        return dict(headers)
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (start + dt.timedelta(days=32)).replace(day=1)
    quota = limits.budget_limit_units()
    window = int((end - start).total_seconds())
    reset = max(1, int((end - now).total_seconds()))
    items = {
        "RateLimit-Policy": f'"tenant.budget";q={quota};w={window}',
        "RateLimit": f'"tenant.budget";r={max(0, quota - spent_units)};t={reset}',
    }
    return {
        name: ", ".join(part for part in (headers.get(name), item) if part)
        for name, item in items.items()
    }
