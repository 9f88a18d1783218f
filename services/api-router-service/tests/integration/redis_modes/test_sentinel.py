"""A Sentinel-managed Redis whose primary is killed (SIGKILL) under load: the same gateway
and worker processes carry on against the promoted replica, and what is refused during
the switch is refused with the catalog's 503, never left hanging."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from tests.support.limits import one_plan, write_policies
from tests.support.processes import GatewayProcess, WorkerProcess
from tests.support.redis_topologies import SentinelRedis
from tests.support.servers import eventually
from tests.support.stack import Stack, bearer, chat

# A request's own bound: far above any answer here, so a hang fails the test instead of
# stalling it (no timing is asserted).
_CLIENT_TIMEOUT_S = 60
# What a request may be refused with while there is no primary: the catalog's 503s.
UNAVAILABLE = {"service_unavailable", "limiter_unavailable", "budget_unavailable", "no_capacity"}


class LoadRun:
    """Callers sending requests back to back through one gateway, each answer recorded
    with the phase of the run it arrived in."""

    def __init__(self, url: str, key: str, callers: int = 4) -> None:
        self._url = url
        self._key = key
        self._callers = callers
        self.phase = "before"
        self.answers: list[tuple[str, int, dict[str, Any]]] = []

    def answered(self, phase: str) -> int:
        return sum(1 for p, status, _ in self.answers if p == phase and status == 200)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[LoadRun]:
        stop = asyncio.Event()

        async def caller(client: httpx.AsyncClient) -> None:
            while not stop.is_set():
                response = await client.post(
                    "/v1/inference", json=chat("m"), headers=bearer(self._key)
                )
                self.answers.append((self.phase, response.status_code, response.json()))

        async with httpx.AsyncClient(base_url=self._url, timeout=_CLIENT_TIMEOUT_S) as client:
            callers = [asyncio.create_task(caller(client)) for _ in range(self._callers)]
            try:
                await eventually(lambda: self.answered("before") >= 20, 60, "first answers")
                self.phase = "switch"
                yield self
                self.phase = "after"
                await eventually(lambda: self.answered("after") >= 50, 60, "answers after")
            finally:
                stop.set()
                await asyncio.gather(*callers)

    def assert_refused_only(self, codes: set[str]) -> None:
        refused = [
            (status, body["error"]["code"]) for _, status, body in self.answers if status != 200
        ]
        assert {code for _, code in refused} <= codes, refused
        # Once the Sentinels agree on the new primary, requests are answered again.
        after = [status for phase, status, _ in self.answers if phase == "after"]
        assert after[-20:] == [200] * 20, after


def start_services(stack: Stack[SentinelRedis]) -> tuple[WorkerProcess, GatewayProcess]:
    worker = stack.worker("node-a", "--backend", "mock", "--models", "m")
    # Limits and a budget with room: admission's scripts run on every request throughout.
    plan: dict[str, Any] = {"requests_per_second": 10_000, "burst": 10_000}
    plan |= {"max_concurrent": 100, "budget": {"per_month": 10**9, "unit": "tokens"}}
    policies = write_policies(stack.tmp / "policies.yaml", one_plan(**plan))
    return worker, stack.gateway_process(limits={"policies_file": str(policies)})


async def test_killing_the_primary_under_load_switches_without_restarts(
    sentinel_stack: Stack[SentinelRedis],
) -> None:
    stack = sentinel_stack
    redis = stack.redis
    worker, gateway = start_services(stack)
    key = await stack.create_key()
    old_primary = redis.primary_port()
    redis.replicated()  # the key, the streams and their group are on the replica too
    async with LoadRun(gateway.url, key).running() as run:
        redis.kill_primary()
        await asyncio.to_thread(redis.wait_failover)
    assert redis.primary_port() == redis.replica.port != old_primary
    # The same processes throughout: nothing was restarted to follow the new primary.
    assert worker.alive() and gateway.alive()
    run.assert_refused_only(UNAVAILABLE)
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
