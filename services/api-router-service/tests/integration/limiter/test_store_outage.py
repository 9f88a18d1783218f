"""Redis stopped under the limiter: fail-open, fail-closed and budgets behave as the plan
says, the gateway keeps answering, and limits are enforced again once Redis is back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from api_router.errors import ApiError
from api_router.limiter.admission import Grant
from tests.support.limits import limiter, one_plan, request, write_policies
from tests.support.servers import RedisServer


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own, to stop and start again on the same port."""
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


async def test_fail_open_admits_at_the_plans_rate_locally_and_recovers(
    own_redis: RedisServer, tmp_path: Path
) -> None:
    plan = one_plan(requests_per_second=0.001, burst=2, on_store_error="fail_open")
    policies = write_policies(tmp_path / "p.yaml", plan)
    async with limiter(own_redis.url, "t", policies) as lim:
        assert isinstance(await lim.acquire(), Grant)  # script loaded, one token used
        own_redis.stop()
        outage = [await lim.try_acquire() for _ in range(4)]
        # The local bucket holds the plan's burst of 2, then refuses.
        assert [isinstance(r, Grant) for r in outage] == [True, True, False, False]
        assert [d.outcome for d in lim.decisions] == [
            "fail_open",
            "fail_open",
            "rate_limited",
            "rate_limited",
        ]
        lim.decisions.clear()
        own_redis.start()  # empty: no script cached, no bucket state
        back = [await lim.try_acquire() for _ in range(3)]
    # Redis's own bucket again (a fresh one of 2), not the local one.
    assert [isinstance(r, Grant) for r in back] == [True, True, False]
    assert [d.outcome for d in lim.decisions] == ["rate_limited"]


async def test_fail_closed_answers_limiter_unavailable(
    own_redis: RedisServer, tmp_path: Path
) -> None:
    plan = one_plan(requests_per_second=10, on_store_error="fail_closed")
    policies = write_policies(tmp_path / "p.yaml", plan)
    async with limiter(own_redis.url, "t", policies) as lim:
        own_redis.stop()
        denied = await lim.try_acquire()
        own_redis.start()
        back = await lim.try_acquire()
    assert isinstance(denied, ApiError)
    assert (denied.code, denied.status, denied.headers["Retry-After"]) == (
        "limiter_unavailable",
        503,
        "1",
    )
    assert [d.outcome for d in lim.decisions] == ["limiter_unavailable"]
    assert isinstance(back, Grant)


async def test_a_tenant_with_a_budget_gets_budget_unavailable_even_when_failing_open(
    own_redis: RedisServer, tmp_path: Path
) -> None:
    plan = one_plan(requests_per_second=10, budget={"per_month": 1000, "unit": "tokens"})
    policies = write_policies(tmp_path / "p.yaml", plan)
    async with limiter(own_redis.url, "t", policies) as lim:
        own_redis.stop()
        denied = await lim.try_acquire(request(max_tokens=10))
        own_redis.start()
        back = await lim.try_acquire(request(max_tokens=10))
    assert isinstance(denied, ApiError)
    assert (denied.code, denied.status) == ("budget_unavailable", 503)
    assert [d.outcome for d in lim.decisions] == ["budget_unavailable"]
    assert isinstance(back, Grant)


async def test_a_redis_that_stops_answering_is_an_outage_not_a_hang(
    own_redis: RedisServer, tmp_path: Path
) -> None:
    plan = one_plan(requests_per_second=0.001, burst=5)
    policies = write_policies(tmp_path / "p.yaml", plan)
    async with limiter(own_redis.url, "t", policies, store_timeout_s=0.2) as lim:
        assert isinstance(await lim.acquire(), Grant)
        own_redis.pause()
        try:
            during = await lim.try_acquire()
        finally:
            own_redis.resume()
        after = await lim.try_acquire()
    assert isinstance(during, Grant)
    assert isinstance(after, Grant)
    assert [d.outcome for d in lim.decisions] == ["fail_open"]
