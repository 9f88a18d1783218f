"""In-flight leases: the N+1th request is refused until one ends or its lease expires."""

from __future__ import annotations

import asyncio
from pathlib import Path

from api_router.errors import ApiError
from api_router.limiter.admission import Grant
from tests.support.limits import limiter, one_plan, request, usage, write_policies
from tests.support.stack import Stack


async def test_the_n_plus_1th_in_flight_request_is_denied_until_one_completes(
    stack: Stack, tmp_path: Path
) -> None:
    policies = write_policies(tmp_path / "p.yaml", one_plan(max_concurrent=3))
    async with limiter(stack.redis.url, stack.prefix, policies) as lim:
        results = await asyncio.gather(*(lim.try_acquire() for _ in range(20)))
        grants = [r for r in results if isinstance(r, Grant)]
        denied = [r for r in results if isinstance(r, ApiError)]
        assert len(grants) == 3
        assert {d.code for d in denied} == {"concurrency_limited"}
        assert denied[0].headers["Retry-After"] == "1"
        assert lim.decisions[0].limit == "tenant.concurrency"
        assert lim.decisions[0].observed == 3
        lim.admission.settle(grants[0], usage(1, 1), accepted=True)
        await lim.admission.settled()
        assert isinstance(await lim.try_acquire(), Grant)
        assert isinstance(await lim.try_acquire(), ApiError)


async def test_a_lease_nobody_releases_expires_by_itself(stack: Stack, tmp_path: Path) -> None:
    policies = write_policies(tmp_path / "p.yaml", one_plan(max_concurrent=1))
    # A gateway that crashed holding its lease: nobody settles it.
    async with limiter(stack.redis.url, stack.prefix, policies, lease_ms=500) as crashed:
        await crashed.acquire()
    async with limiter(stack.redis.url, stack.prefix, policies, lease_ms=500) as lim:
        result = await lim.try_acquire()
        assert isinstance(result, ApiError) and result.code == "concurrency_limited"
        for _ in range(200):  # the lease ends 0.5 s after it was taken
            result = await lim.try_acquire()
            if isinstance(result, Grant):
                break
            await asyncio.sleep(0.05)
        assert isinstance(result, Grant)


async def test_a_request_that_failed_before_acceptance_gives_everything_back(
    stack: Stack, tmp_path: Path
) -> None:
    plan = one_plan(requests_per_second=0.001, burst=1, tokens_per_minute=100, max_concurrent=1)
    policies = write_policies(tmp_path / "p.yaml", plan)
    async with limiter(stack.redis.url, stack.prefix, policies) as lim:
        grant = await lim.acquire(request(max_tokens=90))
        assert isinstance(await lim.try_acquire(request(max_tokens=90)), ApiError)
        lim.admission.settle(grant, None, accepted=False)
        await lim.admission.settled()
        # The request slot, the 90 tokens and the lease are all back.
        assert isinstance(await lim.try_acquire(request(max_tokens=90)), Grant)
