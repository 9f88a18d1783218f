"""Request and token buckets against a real Redis: exact under concurrency, on Redis time."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
import redis

from api_router.errors import ApiError
from api_router.limiter.admission import Grant
from tests.support.limits import limiter, one_plan, request, usage, write_policies
from tests.support.stack import Stack

# Refills so slowly that no test sees a refill: only the burst is there to take.
NO_REFILL = 0.001


async def test_200_requests_at_once_against_burst_10_admit_exactly_10(
    stack: Stack, tmp_path: Path
) -> None:
    policies = write_policies(
        tmp_path / "p.yaml", one_plan(requests_per_second=NO_REFILL, burst=10)
    )
    async with limiter(stack.redis.url, stack.prefix, policies) as lim:
        results = await asyncio.gather(*(lim.try_acquire() for _ in range(200)))
    admitted = [r for r in results if isinstance(r, Grant)]
    denied = [r for r in results if isinstance(r, ApiError)]
    assert len(admitted) == 10
    assert len(denied) == 190
    assert {d.code for d in denied} == {"rate_limited"}
    assert all(int(d.headers["Retry-After"]) >= 1 for d in denied)
    assert len(lim.decisions) == 190
    assert {(d.outcome, d.limit, d.limit_value) for d in lim.decisions} == {
        ("rate_limited", "tenant.requests", 10)
    }


async def test_refill_admits_the_rate_times_the_elapsed_redis_time(
    stack: Stack, tmp_path: Path
) -> None:
    rate = 5.0
    # A bucket of 5 so that no token refilled between two polls is capped away, even when
    # a busy machine stalls the loop for most of a second.
    policies = write_policies(tmp_path / "p.yaml", one_plan(requests_per_second=rate, burst=5))
    with stack.redis.client() as client:
        async with limiter(stack.redis.url, stack.prefix, policies) as lim:
            for _ in range(5):
                await lim.acquire()  # the bucket is empty
            start = last = _redis_seconds(client)
            admitted = 0
            while last - start < 3.0:
                last = _redis_seconds(client)
                if isinstance(await lim.try_acquire(), Grant):
                    admitted += 1
                await asyncio.sleep(0.01)
            elapsed = last - start
    # What refilled until the last attempt, give or take the token refilling at either end.
    assert abs(admitted - rate * elapsed) <= 1, (admitted, elapsed)
    assert 14 <= admitted <= 16


async def test_a_gateway_clock_a_minute_ahead_admits_no_extra_requests(
    stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One token every 20 s: none refills in real time while the test runs.
    policies = write_policies(tmp_path / "p.yaml", one_plan(requests_per_second=0.05, burst=3))
    async with limiter(stack.redis.url, stack.prefix, policies) as lim:
        first = [await lim.try_acquire() for _ in range(5)]
        # A second limiter whose process clock runs a minute ahead: a bucket refilled by the
        # gateway's clock would now be full again (60 s at 0.05/s is 3 tokens).
        real_time = time.time
        monkeypatch.setattr(time, "time", lambda: real_time() + 60)
        monkeypatch.setattr(time, "time_ns", lambda: int((real_time() + 60) * 1e9))
        async with limiter(stack.redis.url, stack.prefix, policies) as skewed:
            second = [await skewed.try_acquire() for _ in range(5)]
    assert sum(isinstance(r, Grant) for r in first) == 3
    assert sum(isinstance(r, Grant) for r in second) == 0


async def test_token_bucket_reserves_prompt_plus_max_tokens_and_settles_actual_usage(
    stack: Stack, tmp_path: Path
) -> None:
    policies = write_policies(tmp_path / "p.yaml", one_plan(tokens_per_minute=100))
    async with limiter(stack.redis.url, stack.prefix, policies) as lim:
        first = await lim.acquire(request(prompt_tokens=10, max_tokens=30))
        second = await lim.acquire(request(prompt_tokens=10, max_tokens=30))
        third = await lim.try_acquire(request(prompt_tokens=10, max_tokens=30))
        assert isinstance(third, ApiError) and third.code == "rate_limited"
        assert lim.decisions[-1].limit == "tenant.tokens"
        assert lim.decisions[-1].observed == 20  # 100 - 2 * 40 left, 40 asked
        # Each used 15 of its 40: 2 * 25 come back, so a 40-token request fits again.
        lim.admission.settle(first, usage(10, 5), accepted=True)
        lim.admission.settle(second, usage(10, 5), accepted=True)
        await lim.admission.settled()
        fourth = await lim.try_acquire(request(prompt_tokens=10, max_tokens=30))
        assert isinstance(fourth, Grant)
        # A completion longer than reserved is debited on settlement (the bucket may go
        # below zero, delaying the next request).
        lim.admission.settle(fourth, usage(10, 200), accepted=True)
        await lim.admission.settled()
        fifth = await lim.try_acquire(request(prompt_tokens=0, max_tokens=1))
        assert isinstance(fifth, ApiError) and fifth.code == "rate_limited"


async def test_a_request_larger_than_the_token_limit_is_refused_without_retry_after(
    stack: Stack, tmp_path: Path
) -> None:
    policies = write_policies(tmp_path / "p.yaml", one_plan(tokens_per_minute=100))
    async with limiter(stack.redis.url, stack.prefix, policies) as lim:
        denied = await lim.try_acquire(request(prompt_tokens=50, max_tokens=51))
    assert isinstance(denied, ApiError) and denied.code == "rate_limited"
    assert "Retry-After" not in denied.headers
    assert "lower max_tokens" in denied.message


async def test_without_max_tokens_the_plans_default_reservation_is_taken(
    stack: Stack, tmp_path: Path
) -> None:
    plan = one_plan(tokens_per_minute=1000, default_reservation_tokens=400)
    policies = write_policies(tmp_path / "p.yaml", plan)
    async with limiter(stack.redis.url, stack.prefix, policies) as lim:
        grant = await lim.acquire(request(prompt_tokens=10, max_tokens=None))
        assert grant.reserved_tokens == 410
        assert grant.headers["RateLimit"] == '"tenant.tokens";r=590;t=25'


async def test_over_the_rate_within_the_queue_wait_the_request_waits_then_proceeds(
    stack: Stack, tmp_path: Path
) -> None:
    plan = one_plan(requests_per_second=10, burst=1, queue_max_wait_ms=1000)
    policies = write_policies(tmp_path / "p.yaml", plan)
    async with limiter(stack.redis.url, stack.prefix, policies) as lim:
        await lim.acquire()
        queued = await lim.try_acquire()
    assert isinstance(queued, Grant)
    assert [(d.outcome, d.limit, d.retry_after_s) for d in lim.decisions] == [
        ("queued", "tenant.requests", 1)
    ]


async def test_over_the_rate_beyond_the_queue_wait_is_429(stack: Stack, tmp_path: Path) -> None:
    plan = one_plan(requests_per_second=1, burst=1, queue_max_wait_ms=100)
    policies = write_policies(tmp_path / "p.yaml", plan)
    async with limiter(stack.redis.url, stack.prefix, policies) as lim:
        await lim.acquire()
        denied = await lim.try_acquire()
    assert isinstance(denied, ApiError) and denied.code == "rate_limited"
    assert denied.headers["Retry-After"] == "1"
    assert [d.outcome for d in lim.decisions] == ["rate_limited"]


async def test_headers_name_the_tightest_limit(stack: Stack, tmp_path: Path) -> None:
    plan = one_plan(requests_per_second=1, burst=10, tokens_per_minute=6000, max_concurrent=4)
    policies = write_policies(tmp_path / "p.yaml", plan)
    async with limiter(stack.redis.url, stack.prefix, policies) as lim:
        first = await lim.acquire(request(max_tokens=100))
        # 9/10 requests, 5900/6000 tokens, 3/4 leases: concurrency is the tightest.
        assert first.headers == {
            "RateLimit-Policy": '"tenant.concurrency";q=4',
            "RateLimit": '"tenant.concurrency";r=3',
        }
        for _ in range(3):
            await lim.acquire(request(max_tokens=1))
        denied = await lim.try_acquire(request(max_tokens=1))
        assert isinstance(denied, ApiError) and denied.code == "concurrency_limited"
        assert denied.headers["RateLimit-Policy"] == '"tenant.concurrency";q=4'
        assert denied.headers["RateLimit"] == '"tenant.concurrency";r=0'
    plan = one_plan(requests_per_second=1, burst=10, tokens_per_minute=6000)
    policies = write_policies(tmp_path / "p2.yaml", plan)
    async with limiter(stack.redis.url, f"{stack.prefix}-2", policies) as lim:
        grant = await lim.acquire(request(max_tokens=3000))
    # 9/10 requests, 3000/6000 tokens (full again in 30 s at 100 a second): tokens.
    assert grant.headers == {
        "RateLimit-Policy": '"tenant.tokens";q=6000;w=60',
        "RateLimit": '"tenant.tokens";r=3000;t=30',
    }


async def test_a_key_narrows_its_tenant_and_other_keys_keep_the_tenant_limit(
    stack: Stack, tmp_path: Path
) -> None:
    tree = one_plan(requests_per_second=NO_REFILL, burst=5)
    tree["tenants"]["acme"]["keys"] = {"narrow": {"requests_per_second": NO_REFILL, "burst": 2}}
    policies = write_policies(tmp_path / "p.yaml", tree)
    async with limiter(stack.redis.url, stack.prefix, policies) as lim:
        narrow = [await lim.try_acquire(request(key_id="narrow")) for _ in range(4)]
        wide = [await lim.try_acquire(request(key_id="wide")) for _ in range(4)]
    assert [isinstance(r, Grant) for r in narrow] == [True, True, False, False]
    # The tenant's burst of 5 is shared: the narrow key took 2 of it.
    assert [isinstance(r, Grant) for r in wide] == [True, True, True, False]
    assert [d.limit for d in lim.decisions] == ["key.requests", "key.requests", "tenant.requests"]


async def test_per_model_limits_apply_on_top_of_the_tenants(stack: Stack, tmp_path: Path) -> None:
    tree = one_plan(requests_per_second=NO_REFILL, burst=10)
    tree["plans"]["p"]["models"] = {"big": {"requests_per_second": NO_REFILL, "burst": 1}}
    policies = write_policies(tmp_path / "p.yaml", tree)
    async with limiter(stack.redis.url, stack.prefix, policies) as lim:
        big = [await lim.try_acquire(request(model="big")) for _ in range(2)]
        small = [await lim.try_acquire(request(model="small")) for _ in range(2)]
    assert [isinstance(r, Grant) for r in big] == [True, False]
    assert [isinstance(r, Grant) for r in small] == [True, True]
    assert [(d.limit, d.scope, d.model) for d in lim.decisions] == [
        ("model.requests", "model", "big")
    ]


async def test_a_tenant_without_a_plan_is_refused_unless_there_is_a_default_plan(
    stack: Stack, tmp_path: Path
) -> None:
    policies = write_policies(tmp_path / "p.yaml", one_plan(burst=1, requests_per_second=1))
    async with limiter(stack.redis.url, stack.prefix, policies) as lim:
        refused = await lim.try_acquire(request(tenant="stranger"))
    assert isinstance(refused, ApiError) and refused.code == "forbidden"
    tree = one_plan(requests_per_second=1)
    tree["plans"]["default"] = {"requests_per_second": 1, "burst": 1}
    policies = write_policies(tmp_path / "p.yaml", tree)
    async with limiter(stack.redis.url, stack.prefix, policies) as lim:
        grant = await lim.acquire(request(tenant="stranger"))
    assert grant.plan == "default"


def _redis_seconds(client: redis.Redis) -> float:
    seconds, micros = client.time()
    return float(seconds) + micros / 1e6
