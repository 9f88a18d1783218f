"""Limits through the gateway: real Redis, a mock worker process, the app in-process (and
several gateway processes for the shared-burst case)."""

from __future__ import annotations

import asyncio
import re
import signal
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import msgspec
from starlette.types import Receive, Scope, Send

from api_router.api.request_context import RequestContext
from tests.support.limits import one_plan, write_policies
from tests.support.servers import wait_until
from tests.support.stack import Stack, chat

NO_REFILL = 0.001
MOCK = ("--backend", "mock", "--models", "m", "--max-concurrency", "16")


def _limits(path: Path, **extra: Any) -> dict[str, Any]:
    return {"policies_file": str(path), **extra}


def _decisions(metrics: str, outcome: str, limit: str, tenant: str = "acme") -> float:
    found = re.search(
        rf'api_router_limit_decisions_total\{{limit="{re.escape(limit)}",'
        rf'outcome="{outcome}",tenant="{tenant}"\}} (\S+)',
        metrics,
    )
    return float(found.group(1)) if found else 0.0


async def test_200_requests_at_once_against_burst_10_get_10_answers(
    stack: Stack, tmp_path: Path
) -> None:
    policies = write_policies(
        tmp_path / "p.yaml", one_plan(requests_per_second=NO_REFILL, burst=10)
    )
    stack.worker("node-a", *MOCK)
    key = await stack.create_key("acme")
    async with stack.gateway(limits=_limits(policies)) as gw:
        await gw.wait_for_model("m")
        # The key's record cached first (the model list is not rate limited): on a starved
        # 2-core machine 200 cold lookups at once can outlast Redis's connect timeout, and
        # this test is about the limiter, not a cold key cache.
        assert (await gw.client.get("/v1/models", headers={"X-API-Key": key})).status_code == 200
        responses = await asyncio.gather(
            *(
                gw.client.post("/v1/inference", json=chat("m"), headers={"X-API-Key": key})
                for _ in range(200)
            )
        )
        metrics = (await gw.client.get("/metrics")).text
    statuses = [r.status_code for r in responses]
    assert statuses.count(200) == 10, [r.text for r in responses if r.status_code != 429][:3]
    assert statuses.count(429) == 190
    denied = next(r for r in responses if r.status_code == 429)
    error = denied.json()["error"]
    assert error["code"] == "rate_limited"
    assert error["type"] == "rate_limit_error"
    assert error["request_id"] == denied.headers["x-request-id"]
    assert error["message"].startswith(
        "rate limit exceeded: tenant.requests (limit 10, observed 0)"
    )
    assert int(denied.headers["retry-after"]) >= 1
    assert denied.headers["ratelimit-policy"] == '"tenant.requests";q=10;w=10000'
    assert denied.headers["ratelimit"].startswith('"tenant.requests";r=0;t=')
    assert _decisions(metrics, "rate_limited", "tenant.requests") == 190


async def test_decisions_are_on_the_request_context_for_the_audit_record(
    stack: Stack, tmp_path: Path
) -> None:
    policies = write_policies(tmp_path / "p.yaml", one_plan(requests_per_second=NO_REFILL, burst=1))
    stack.worker("node-a", *MOCK)
    key = await stack.create_key("acme")
    contexts: list[RequestContext] = []
    async with stack.gateway(limits=_limits(policies)) as gw:

        async def recording(scope: Scope, receive: Receive, send: Send) -> None:
            await gw.app(scope, receive, send)
            contexts.append(scope["api_router.context"])

        transport = httpx.ASGITransport(app=recording)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            await gw.wait_for_model("m")
            for _ in range(2):
                await client.post("/v1/inference", json=chat("m"), headers={"X-API-Key": key})
    admitted, denied = contexts
    assert (admitted.plan, admitted.limit_decisions) == ("p", [])
    assert admitted.principal is not None
    [decision] = denied.limit_decisions
    assert msgspec.to_builtins(decision) == {
        "outcome": "rate_limited",
        "limit": "tenant.requests",
        "scope": "tenant",
        "plan": "p",
        "tenant": "acme",
        "key_id": admitted.principal.key_id,
        "model": "m",
        "limit_value": 1,
        "observed": 0,
        "retry_after_s": decision.retry_after_s,
    }
    assert decision.retry_after_s is not None and decision.retry_after_s > 900


async def test_answers_carry_the_ratelimit_fields_and_settle_actual_usage(
    stack: Stack, tmp_path: Path
) -> None:
    plan = one_plan(
        requests_per_second=1,
        burst=10,
        max_concurrent=1,
        budget={"per_month": 100_000, "unit": "tokens"},
    )
    policies = write_policies(tmp_path / "p.yaml", plan)
    stack.worker("node-a", *MOCK)
    key = await stack.create_key("acme")
    async with stack.gateway(limits=_limits(policies)) as gw:
        await gw.wait_for_model("m")
        used = 0
        for _ in range(3):  # one at a time: each ends (and frees its lease) before the next
            response = await gw.client.post(
                "/v1/inference",
                json=chat("m", options={"max_tokens": 50}),
                headers={"X-API-Key": key},
            )
            assert response.status_code == 200, response.text
            # The tightest rate limit, then the month's budget (its reservation included).
            policy, budget_policy = response.headers["ratelimit-policy"].split(", ")
            state, budget_state = response.headers["ratelimit"].split(", ")
            assert (policy, state) == ('"tenant.concurrency";q=1', '"tenant.concurrency";r=0')
            assert budget_policy.startswith('"tenant.budget";q=100000;w=')
            left = int(budget_state.removeprefix('"tenant.budget";r=').split(";")[0])
            assert 100_000 - used - 50 - 16 < left < 100_000 - used - 50
            used += response.json()["usage"]["total_tokens"]
            await gw.services.admission.settled()
    month = datetime.now(UTC).strftime("%Y-%m")
    with stack.redis.client() as client:
        spend = client.hget(stack.keys.budget("acme"), month)
        leases = client.zcard(stack.keys.limit("acme", "tenant", "lease"))
    # The budget holds what the backend reported, not the reservations.
    assert spend is not None and int(spend) == used
    assert leases == 0


async def test_an_exhausted_budget_is_402(stack: Stack, tmp_path: Path) -> None:
    policies = write_policies(
        tmp_path / "p.yaml", one_plan(budget={"per_month": 10, "unit": "tokens"})
    )
    stack.worker("node-a", *MOCK)
    key = await stack.create_key("acme")
    async with stack.gateway(limits=_limits(policies)) as gw:
        await gw.wait_for_model("m")
        response = await gw.client.post(
            "/v1/inference", json=chat("m", options={"max_tokens": 50}), headers={"X-API-Key": key}
        )
        metrics = (await gw.client.get("/metrics")).text
    assert response.status_code == 402
    assert response.json()["error"]["code"] == "budget_exhausted"
    assert "retry-after" not in response.headers
    assert _decisions(metrics, "budget_exhausted", "tenant.budget") == 1


async def test_a_queued_request_waits_then_succeeds(stack: Stack, tmp_path: Path) -> None:
    plan = one_plan(requests_per_second=5, burst=1, queue_max_wait_ms=2000)
    policies = write_policies(tmp_path / "p.yaml", plan)
    stack.worker("node-a", *MOCK)
    key = await stack.create_key("acme")
    async with stack.gateway(limits=_limits(policies)) as gw:
        await gw.wait_for_model("m")
        responses = await asyncio.gather(
            *(
                gw.client.post("/v1/inference", json=chat("m"), headers={"X-API-Key": key})
                for _ in range(3)
            )
        )
        metrics = (await gw.client.get("/metrics")).text
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert _decisions(metrics, "queued", "tenant.requests") == 2


async def test_a_tenant_without_a_plan_is_403(stack: Stack, tmp_path: Path) -> None:
    policies = write_policies(tmp_path / "p.yaml", one_plan(requests_per_second=1))
    stack.worker("node-a", *MOCK)
    key = await stack.create_key("stranger")
    async with stack.gateway(limits=_limits(policies)) as gw:
        await gw.wait_for_model("m")
        response = await gw.client.post("/v1/inference", json=chat("m"), headers={"X-API-Key": key})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"


async def test_several_gateway_processes_share_one_burst(stack: Stack, tmp_path: Path) -> None:
    policies = write_policies(
        tmp_path / "p.yaml", one_plan(requests_per_second=NO_REFILL, burst=10)
    )
    stack.worker("node-a", *MOCK)
    gateways = [stack.gateway_process(f"gateway-{i}", limits=_limits(policies)) for i in range(3)]
    key = await stack.create_key("acme")
    async with httpx.AsyncClient(timeout=30) as client:
        responses = await asyncio.gather(
            *(
                client.post(f"{gw.url}/v1/inference", json=chat("m"), headers={"X-API-Key": key})
                for gw in gateways
                for _ in range(30)
            )
        )
    statuses = [r.status_code for r in responses]
    assert statuses.count(200) == 10
    assert statuses.count(429) == 80


async def test_sighup_reloads_the_policies_of_a_running_gateway(
    stack: Stack, tmp_path: Path
) -> None:
    path = write_policies(tmp_path / "p.yaml", one_plan(requests_per_second=NO_REFILL, burst=1))
    stack.worker("node-a", *MOCK)
    # The file is looked at once an hour: only SIGHUP can make this gateway see the change.
    gateway = stack.gateway_process(limits=_limits(path, reload_interval_s=3600))
    key = await stack.create_key("acme")
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as client:

        async def status() -> int:
            response = await client.post(
                "/v1/inference", json=chat("m"), headers={"X-API-Key": key}
            )
            return response.status_code

        assert [await status(), await status()] == [200, 429]
        write_policies(path, one_plan(requests_per_second=1000, burst=1000))
        gateway.send(signal.SIGHUP)
        wait_until(lambda: "policies reloaded" in gateway.log(), what="the reload")
        assert gateway.alive()
        assert [await status(), await status()] == [200, 200]
