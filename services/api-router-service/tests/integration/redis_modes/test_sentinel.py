"""A Sentinel-managed Redis whose primary is killed (SIGKILL) under load: the same gateway
and worker processes carry on against the promoted replica, and what is refused during
the switch is refused with the catalog's 503, never left hanging."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from tests.support.limits import one_plan, write_policies
from tests.support.redis_topologies import SentinelRedis
from tests.support.servers import eventually
from tests.support.stack import Stack, bearer, chat

# A request's own bound: far above any answer here, so a hang fails the test instead of
# stalling it (no timing is asserted).
_CLIENT_TIMEOUT_S = 60
_CALLERS = 4
# What a request may be refused with while there is no primary: the catalog's 503s.
UNAVAILABLE = {"service_unavailable", "limiter_unavailable", "budget_unavailable", "no_capacity"}


async def test_killing_the_primary_under_load_switches_without_restarts(
    sentinel_stack: Stack[SentinelRedis],
) -> None:
    stack = sentinel_stack
    redis = stack.redis
    worker = stack.worker("node-a", "--backend", "mock", "--models", "m")
    # Limits and a budget with room: admission's scripts run on every request throughout.
    plan: dict[str, Any] = {"requests_per_second": 10_000, "burst": 10_000}
    plan |= {"max_concurrent": 100, "budget": {"per_month": 10**9, "unit": "tokens"}}
    policies = write_policies(stack.tmp / "policies.yaml", one_plan(**plan))
    gateway = stack.gateway_process(limits={"policies_file": str(policies)})
    key = await stack.create_key()
    old_primary = redis.primary_port()
    redis.replicated()  # the key, the streams and their group are on the replica too
    answers: list[tuple[str, int, dict[str, Any]]] = []
    phase = "before"
    stop = asyncio.Event()

    async def caller(client: httpx.AsyncClient) -> None:
        while not stop.is_set():
            response = await client.post("/v1/inference", json=chat("m"), headers=bearer(key))
            answers.append((phase, response.status_code, response.json()))

    def ok_since(which: str) -> int:
        return sum(1 for p, status, _ in answers if p == which and status == 200)

    async with httpx.AsyncClient(base_url=gateway.url, timeout=_CLIENT_TIMEOUT_S) as client:
        callers = [asyncio.create_task(caller(client)) for _ in range(_CALLERS)]
        try:
            await eventually(lambda: ok_since("before") >= 20, 60, "answers before the kill")
            phase = "switch"
            redis.kill_primary()
            await asyncio.to_thread(redis.wait_failover)
            phase = "after"
            await eventually(lambda: ok_since("after") >= 50, 60, "answers after the switch")
        finally:
            stop.set()
            await asyncio.gather(*callers)
    assert redis.primary_port() == redis.replica.port != old_primary
    # The same processes throughout: nothing was restarted to follow the new primary.
    assert worker.alive() and gateway.alive()
    refused = [(status, body["error"]["code"]) for _, status, body in answers if status != 200]
    assert {status for status, _ in refused} <= {503}, refused
    assert {code for _, code in refused} <= UNAVAILABLE, refused
    # Once the Sentinels agree on the new primary, requests are answered again; a few may
    # still meet a connection opened before (the first of a few failures each).
    after = [status for p, status, _ in answers if p == "after"]
    assert after[-20:] == [200] * 20, after
    with redis.replica.client() as client:  # the promoted replica holds the new work
        assert client.exists(stack.keys.health)
    # The CLI finds the new primary through the Sentinels too, and its key works at once.
    argv = ("keys", "create", "--direct", "--tenant", "acme", "--json")
    created = await asyncio.to_thread(stack.cli, *argv)
    assert created.returncode == 0, created.stderr.decode()
    new_key = json.loads(created.stdout)["api_key"]
    async with httpx.AsyncClient(base_url=gateway.url, timeout=_CLIENT_TIMEOUT_S) as client:
        answer = await client.post("/v1/inference", json=chat("m"), headers=bearer(new_key))
        usage = await client.get("/v1/usage", headers=bearer(new_key))
    assert answer.status_code == 200, answer.text
    assert usage.status_code == 200 and usage.json()["requests"] > 0
