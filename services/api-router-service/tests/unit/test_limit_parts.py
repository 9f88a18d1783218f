"""Pure parts of the limiter: RateLimit fields, the local bucket, estimates, denials."""

from __future__ import annotations

from api_router.chat import ChatMessage
from api_router.limiter.decision import LimitDecision
from api_router.limiter.denial import denial_error
from api_router.limiter.limit_set import Check
from api_router.limiter.local_bucket import LocalBuckets
from api_router.limiter.rate_limit_headers import rate_limit_headers, tightest
from api_router.limiter.token_estimate import estimate_prompt_tokens

REQUESTS = Check("tenant.requests", "requests", "k1", capacity=10, rate_per_s=5.0)
TOKENS = Check("key.tokens", "tokens", "k2", capacity=6000, rate_per_s=100.0)
LEASES = Check("model.concurrency", "lease", "k3", capacity=4, rate_per_s=0.0)


def test_ratelimit_fields_follow_the_ietf_draft() -> None:
    assert rate_limit_headers(REQUESTS, 3, 2) == {
        "RateLimit-Policy": '"tenant.requests";q=10;w=2',
        "RateLimit": '"tenant.requests";r=3;t=2',
    }
    assert rate_limit_headers(LEASES, 1, 0) == {
        "RateLimit-Policy": '"model.concurrency";q=4',
        "RateLimit": '"model.concurrency";r=1',
    }


def test_the_tightest_limit_is_the_smallest_share_left() -> None:
    headers = tightest([REQUESTS, TOKENS, LEASES], [(5, 1), (1200, 48), (3, 0)])
    assert headers["RateLimit"] == '"key.tokens";r=1200;t=48'  # 20 % against 50 % and 75 %
    assert tightest([], []) == {}


def test_the_local_bucket_holds_its_burst_and_refills_at_its_rate() -> None:
    now = [100.0]
    buckets = LocalBuckets(clock=lambda: now[0])
    assert [buckets.take("acme", 2, 1.0) for _ in range(3)] == [True, True, False]
    assert buckets.take("other", 2, 1.0)  # buckets are per name
    now[0] += 0.5
    assert not buckets.take("acme", 2, 1.0)
    now[0] += 0.5
    assert buckets.take("acme", 2, 1.0)
    now[0] += 100
    assert [buckets.take("acme", 2, 1.0) for _ in range(3)] == [True, True, False]


def test_prompt_estimate_is_a_quarter_of_the_characters_plus_framing() -> None:
    messages = [ChatMessage("system", "x" * 8), ChatMessage("user", "y" * 9)]
    assert estimate_prompt_tokens(messages) == (4 + 2) + (4 + 3)
    assert estimate_prompt_tokens([]) == 0


def _decision(**values: object) -> LimitDecision:
    base: dict[str, object] = {
        "outcome": "rate_limited",
        "limit": "tenant.requests",
        "scope": "tenant",
        "plan": "p",
        "tenant": "acme",
        "key_id": "k",
        "model": "m",
        "limit_value": 10,
        "observed": 0.0,
        "retry_after_s": 3,
    }
    base.update(values)
    return LimitDecision(**base)  # type: ignore[arg-type]


def test_a_denial_says_which_limit_and_when_to_retry() -> None:
    error = denial_error(_decision(), {"RateLimit": "x"})
    assert (error.code, error.status) == ("rate_limited", 429)
    assert error.message == (
        "rate limit exceeded: tenant.requests (limit 10, observed 0); retry after 3 s"
    )
    assert error.headers == {"RateLimit": "x", "Retry-After": "3"}
    budget = denial_error(
        _decision(
            outcome="budget_exhausted",
            limit="tenant.budget",
            limit_value=2.5,
            observed=2.4,
            retry_after_s=None,
        ),
        {},
    )
    assert (budget.status, budget.headers) == (402, {})
    assert budget.message == "monthly budget exhausted: tenant.budget (limit 2.5, observed 2.4)"
