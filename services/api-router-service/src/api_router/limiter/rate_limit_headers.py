"""The IETF ``RateLimit-Policy`` and ``RateLimit`` fields (draft-ietf-httpapi-ratelimit-headers).

Both name the tightest limit of the request: the one with the smallest share left.
``RateLimit-Policy: "tenant.requests";q=10;w=2`` says the quota (a bucket of 10 that refills
in 2 s); ``RateLimit: "tenant.requests";r=3;t=1`` says 3 are left and the bucket is full
again in 1 s. Concurrency limits carry no window.
"""

from __future__ import annotations

from collections.abc import Sequence

from api_router.limiter.limit_set import Check


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
