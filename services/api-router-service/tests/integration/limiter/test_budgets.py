"""Monthly budgets against a real Redis: never overspent under concurrency, exact at the
boundary, charged to the calendar month of Redis time."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from api_router.errors import ApiError
from api_router.keyspace import USAGE_TTL_S
from api_router.limiter.admission import Grant
from api_router.redis_store import lua_script
from tests.support.limits import limiter, one_plan, request, usage, write_policies
from tests.support.stack import Stack


def _tokens_budget(per_month: int) -> dict[str, object]:
    return one_plan(budget={"per_month": per_month, "unit": "tokens"})


def _spent(stack: Stack, month: str) -> int | None:
    with stack.redis.client() as client:
        value = client.hget(stack.keys.budget("acme"), month)
    return None if value is None else int(value)


async def test_50_parallel_requests_against_a_budget_for_5_spend_no_more_than_it(
    stack: Stack, tmp_path: Path
) -> None:
    # Each request reserves 10 prompt + 90 completion tokens: 5 fit in 500.
    policies = write_policies(tmp_path / "p.yaml", _tokens_budget(500))
    async with limiter(stack.redis.url, stack.prefix, policies) as lim:
        results = await asyncio.gather(
            *(lim.try_acquire(request(prompt_tokens=10, max_tokens=90)) for _ in range(50))
        )
        admitted = [r for r in results if isinstance(r, Grant)]
        month = admitted[0].month
        assert _spent(stack, month) == 500
        for grant in admitted:
            lim.admission.settle(grant, usage(10, 90), accepted=True)
        await lim.admission.settled()
    denied = [r for r in results if isinstance(r, ApiError)]
    assert len(admitted) == 5
    assert len(denied) == 45
    assert {(d.code, d.status) for d in denied} == {("budget_exhausted", 402)}
    assert _spent(stack, month) == 500
    # Every excess request left an audit decision: which limit, its size, the spend seen.
    assert len(lim.decisions) == 45
    assert {(d.outcome, d.limit, d.limit_value, d.observed) for d in lim.decisions} == {
        ("budget_exhausted", "tenant.budget", 500, 500)
    }
    assert "monthly budget exhausted: tenant.budget (limit 500, observed 500)" in denied[0].message


async def test_the_request_that_would_cross_the_budget_is_denied_and_a_refund_restores_it(
    stack: Stack, tmp_path: Path
) -> None:
    policies = write_policies(tmp_path / "p.yaml", _tokens_budget(100))
    async with limiter(stack.redis.url, stack.prefix, policies) as lim:
        first = await lim.acquire(request(prompt_tokens=20, max_tokens=20))
        second = await lim.acquire(request(prompt_tokens=20, max_tokens=20))
        # 80 spent: a 40-token request would cross 100, a 20-token one lands exactly on it.
        crossing = await lim.try_acquire(request(prompt_tokens=20, max_tokens=20))
        assert isinstance(crossing, ApiError) and crossing.code == "budget_exhausted"
        assert crossing.message.endswith(
            "(limit 100, observed 80); this request reserves up to 40 (its prompt and "
            "max_tokens): a lower max_tokens may fit"
        )
        exact = await lim.acquire(request(prompt_tokens=10, max_tokens=10))
        assert _spent(stack, first.month) == 100
        tiny = await lim.try_acquire(request(prompt_tokens=0, max_tokens=1))
        assert isinstance(tiny, ApiError) and tiny.code == "budget_exhausted"
        # Settlement: the first used 15 of its 40, the second failed before a worker took
        # it, the last used all it reserved. 25 + 40 come back.
        lim.admission.settle(first, usage(10, 5), accepted=True)
        lim.admission.settle(second, None, accepted=False)
        lim.admission.settle(exact, usage(10, 10), accepted=True)
        await lim.admission.settled()
        assert _spent(stack, first.month) == 35
        again = await lim.try_acquire(request(prompt_tokens=20, max_tokens=20))
        assert isinstance(again, Grant)


async def test_spend_never_goes_negative(stack: Stack, tmp_path: Path) -> None:
    policies = write_policies(tmp_path / "p.yaml", _tokens_budget(100))
    async with limiter(stack.redis.url, stack.prefix, policies) as lim:
        grant = await lim.acquire(request(prompt_tokens=20, max_tokens=20))
        with stack.redis.client() as client:  # an operator resets this month's spend
            client.hset(stack.keys.budget("acme"), grant.month, 0)
        lim.admission.settle(grant, None, accepted=False)
        await lim.admission.settled()
        assert _spent(stack, grant.month) == 0


async def test_cost_budgets_use_the_model_prices(stack: Stack, tmp_path: Path) -> None:
    tree = one_plan(budget={"per_month": 1.0, "unit": "cost"})
    tree["models"] = {"m": {"prompt_price_per_1k": 2.0, "completion_price_per_1k": 10.0}}
    policies = write_policies(tmp_path / "p.yaml", tree)
    async with limiter(stack.redis.url, stack.prefix, policies) as lim:
        # 100 prompt tokens cost 0.2, 50 completion tokens 0.5: 0.7 of 1.0 reserved.
        grant = await lim.acquire(request(prompt_tokens=100, max_tokens=50))
        assert _spent(stack, grant.month) == 700_000
        denied = await lim.try_acquire(request(prompt_tokens=100, max_tokens=50))
        assert isinstance(denied, ApiError) and denied.code == "budget_exhausted"
        assert lim.decisions[-1].limit_value == 1.0
        assert lim.decisions[-1].observed == pytest.approx(0.7)
        lim.admission.settle(grant, usage(100, 10), accepted=True)  # 0.2 + 0.1 used
        await lim.admission.settled()
        assert _spent(stack, grant.month) == 300_000


async def test_spend_is_per_calendar_month_of_redis_time(stack: Stack, tmp_path: Path) -> None:
    with stack.redis.client() as client:
        seconds, _ = client.time()
    now = datetime.fromtimestamp(seconds, UTC)
    this_month = now.strftime("%Y-%m")
    last_month = f"{now.year - 1}-12" if now.month == 1 else f"{now.year}-{now.month - 1:02d}"
    policies = write_policies(tmp_path / "p.yaml", _tokens_budget(100))
    with stack.redis.client() as client:
        client.hset(stack.keys.budget("acme"), last_month, 100)  # last month: all spent
    async with limiter(stack.redis.url, stack.prefix, policies) as lim:
        grant = await lim.acquire(request(prompt_tokens=0, max_tokens=100))
        assert grant.month == this_month
        denied = await lim.try_acquire(request(prompt_tokens=0, max_tokens=1))
        assert isinstance(denied, ApiError) and denied.code == "budget_exhausted"
    with stack.redis.client() as client:
        ttl = client.ttl(stack.keys.budget("acme"))
    assert USAGE_TTL_S - 86_400 < ttl <= USAGE_TTL_S  # a year of months is kept


@pytest.mark.parametrize(
    ("instant", "month"),
    [
        ("2026-11-30T23:59:59", "2026-11"),
        ("2026-12-01T00:00:00", "2026-12"),
        ("2026-12-31T23:59:59", "2026-12"),
        ("2027-01-01T00:00:00", "2027-01"),
        ("2028-02-29T12:00:00", "2028-02"),
        ("2028-03-01T00:00:00", "2028-03"),
        ("2100-02-28T23:59:59", "2100-02"),
        ("2100-03-01T00:00:00", "2100-03"),
        ("1970-01-01T00:00:00", "1970-01"),
    ],
)
def test_month_rollover_in_the_scripts_calendar(stack: Stack, instant: str, month: str) -> None:
    seconds = int(datetime.fromisoformat(instant).replace(tzinfo=UTC).timestamp())
    script = (
        lua_script("api_router.limiter", "calendar_month") + "return month_of(tonumber(ARGV[1]))"
    )
    with stack.redis.client() as client:
        assert client.eval(script, 0, seconds) == month.encode()


async def test_settlements_queued_together_all_land_even_once_redis_lost_its_scripts(
    stack: Stack, tmp_path: Path
) -> None:
    policies = write_policies(tmp_path / "p.yaml", _tokens_budget(10_000))
    async with limiter(stack.redis.url, stack.prefix, policies) as lim:
        grants = [await lim.acquire(request(prompt_tokens=10, max_tokens=90)) for _ in range(20)]
        for batch in (grants[:10], grants[10:]):
            # Queued with no await in between: written together, in one pipeline.
            for grant in batch:
                lim.admission.settle(grant, usage(10, 40), accepted=True)
            await lim.admission.settled()
            with stack.redis.client() as client:
                client.script_flush()  # as a restarted Redis: the next batch reloads it
    month = grants[0].month
    assert _spent(stack, month) == 20 * 50
    with stack.redis.client() as client:
        counters = client.hgetall(stack.keys.budget("acme"))
    requests = {k: int(v) for k, v in counters.items() if k.endswith(b":requests")}
    assert list(requests.values()) == [20]
