"""A limit decision that ends the request, as the catalog error the client receives.

The message carries the audit facts (which limit, its size, what was observed, when to
retry), so a client, a log reader and a test see the same thing the audit record does.
"""

from __future__ import annotations

from collections.abc import Mapping

from api_router.errors import ApiError
from api_router.limiter.decision import LimitDecision

_WHAT = {
    "rate_limited": "rate limit exceeded",
    "concurrency_limited": "too many requests in flight",
    "budget_exhausted": "monthly budget exhausted",
    "limiter_unavailable": "the rate limiter is unavailable and this plan fails closed",
    "budget_unavailable": "the budget store is unavailable; budgets are never spent blind",
}


def denial_error(decision: LimitDecision, headers: Mapping[str, str], hint: str = "") -> ApiError:
    """``hint``: what the client can change, appended to the message."""
    code = decision.outcome
    message = f"{_WHAT[code]}: {decision.limit}"
    if code in ("rate_limited", "concurrency_limited", "budget_exhausted"):
        limit, observed = _number(decision.limit_value), _number(decision.observed)
        message += f" (limit {limit}, observed {observed}){hint}"
    all_headers = dict(headers)
    if decision.retry_after_s is not None:
        all_headers["Retry-After"] = str(decision.retry_after_s)
        message += f"; retry after {decision.retry_after_s} s"
    elif code == "rate_limited":
        message += "; this request alone exceeds the limit (lower max_tokens)"
    return ApiError(code, message, headers=all_headers)


def _number(value: float) -> str:
    return f"{value:g}"
