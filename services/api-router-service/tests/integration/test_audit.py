"""The audit lookup: owners see their records, nobody can probe other tenants' ids; the
admins' listing (from PostgreSQL)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from api_router.usage.record import AdminAction, now_rfc3339
from tests.support.audit_rows import request_rows
from tests.support.limits import write_policies
from tests.support.servers import eventually
from tests.support.stack import Gateway, Stack, bearer, chat


async def _audited(gw: Gateway, key: str, body: dict[str, Any] | None = None) -> str:
    """Send an inference request and wait until its audit record is stored."""
    answer = await gw.client.post("/v1/inference", json=body or chat(), headers=bearer(key))
    request_id = answer.headers["x-request-id"]
    redis_key = gw.services.keys.audit_record(request_id)
    for _ in range(500):
        if await gw.services.redis.exists(redis_key):
            return request_id
        await asyncio.sleep(0.01)
    raise TimeoutError(f"no audit record for {request_id}")


async def test_owner_sees_its_record_another_tenant_gets_404_admin_sees_all(
    stack: Stack,
) -> None:
    stack.worker("node-a")
    acme = await stack.create_key("acme")
    acme_auditor = await stack.create_key("acme", scopes=["audit:read"])
    globex_auditor = await stack.create_key("globex", scopes=["audit:read"])
    admin = await stack.create_key("ops", scopes=["admin"])
    inference_only = await stack.create_key("acme")
    async with stack.gateway() as gw:
        await gw.wait_for_model("llama3.2")
        request_id = await _audited(gw, acme)

        async def lookup(key: str, rid: str = request_id) -> httpx.Response:
            return await gw.client.get(f"/v1/audit/requests/{rid}", headers=bearer(key))

        own = await lookup(acme_auditor)
        other = await lookup(globex_auditor)
        unknown = await lookup(acme_auditor, "req_" + "0" * 32)
        by_admin = await lookup(admin)
        no_scope = await lookup(inference_only)
    assert own.status_code == 200, own.text
    record = own.json()
    assert record["request_id"] == request_id
    assert (record["tenant"], record["status"], record["http_status"]) == ("acme", "ok", 200)
    assert (record["auth_method"], record["limit_decisions"]) == ("api_key", [])
    assert record["node_id"] == "node-a"
    assert by_admin.status_code == 200 and by_admin.json() == record
    assert other.status_code == unknown.status_code == 404
    assert other.json()["error"]["code"] == unknown.json()["error"]["code"] == "not_found"
    assert no_scope.status_code == 403


@pytest.mark.parametrize(
    "request_id", ["nope", "req_" + "0" * 31, "req_" + "G" * 32, "req_" + "0" * 33, "x" * 300]
)
async def test_malformed_ids_are_400_without_asking_redis(stack: Stack, request_id: str) -> None:
    admin = await stack.create_key("ops", scopes=["admin"])
    async with stack.gateway(auth={"key_cache_ttl_s": 60}) as gw:  # auth reads no key
        await gw.client.get("/v1/audit/requests/req_" + "0" * 32, headers=bearer(admin))
        gets_before = await _get_calls(gw)
        answer = await gw.client.get(f"/v1/audit/requests/{request_id}", headers=bearer(admin))
        gets_after = await _get_calls(gw)
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "invalid_request"
    assert gets_after == gets_before


async def test_admins_list_records_newest_first_filtered_and_paginated(
    audited_stack: Stack,
) -> None:
    stack = audited_stack
    assert stack.database_url is not None
    url = stack.database_url
    stack.worker("node-a")
    acme = await stack.create_key("acme")
    globex = await stack.create_key("globex")
    admin = await stack.create_key("ops", scopes=["admin"])
    auditor = await stack.create_key("acme", scopes=["audit:read"])
    stack.audit_sink()
    async with stack.gateway() as gw:
        await gw.wait_for_model("llama3.2")
        acme_ids = [await _audited(gw, acme) for _ in range(3)]
        globex_ok = await _audited(gw, globex)
        globex_denied = await _audited(gw, globex, chat("no-such-model"))
        # The listing reads PostgreSQL: wait for the sink to have stored the five.
        await eventually(lambda: len(request_rows(url)) == 5, 30, "rows stored")

        async def listing(**params: str) -> httpx.Response:
            return await gw.client.get("/v1/audit/requests", params=params, headers=bearer(admin))

        everything = await listing()
        first_page = await listing(tenant="acme", limit="2")
        second_page = await listing(
            tenant="acme", limit="2", cursor=first_page.json()["next_cursor"]
        )
        denied = await listing(status="denied")
        future = await listing(since="2999-01-01T00:00:00Z")
        bad = [
            await listing(limit="0"),
            await listing(status="weird"),
            await listing(since="yesterday"),
            await listing(until="2026-01-01T00:00:00"),
            await listing(cursor="abc"),
        ]
        not_admin = await gw.client.get("/v1/audit/requests", headers=bearer(auditor))

    ids = [r["request_id"] for r in everything.json()["data"]]
    assert ids == [globex_denied, globex_ok, *reversed(acme_ids)]
    pages = [r["request_id"] for r in first_page.json()["data"] + second_page.json()["data"]]
    assert pages == list(reversed(acme_ids))
    assert second_page.json()["next_cursor"] is None
    assert [r["request_id"] for r in denied.json()["data"]] == [globex_denied]
    assert future.json() == {"data": [], "next_cursor": None}
    assert [b.status_code for b in bad] == [400] * 5
    assert not_admin.status_code == 403


async def _get_calls(gw: Gateway) -> int:
    stats = await gw.services.redis.info("commandstats")
    entry = stats.get("cmdstat_get", {"calls": 0})
    return int(entry["calls"])


async def test_denials_are_audited_with_their_limit_and_usage_is_priced(stack: Stack) -> None:
    plan = {
        "requests_per_second": 0.001,
        "burst": 2,
        "budget": {"per_month": 1_000_000, "unit": "cost"},
    }
    policies = {
        "plans": {"p": plan},
        "tenants": {"acme": {"plan": "p"}},
        "models": {"m": {"prompt_price_per_1k": 2.0, "completion_price_per_1k": 4.0}},
    }
    path = write_policies(stack.tmp / "policies.yaml", policies)
    stack.worker("node-a", "--backend", "mock", "--models", "m")
    key = await stack.create_key("acme")
    auditor = await stack.create_key("acme", scopes=["audit:read"])
    async with stack.gateway(limits={"policies_file": str(path)}) as gw:
        await gw.wait_for_model("m")
        admitted = await _audited(gw, key, chat("m"))
        await _audited(gw, key, chat("m"))
        denied = await _audited(gw, key, chat("m"))
        ok_record = (
            await gw.client.get(f"/v1/audit/requests/{admitted}", headers=bearer(auditor))
        ).json()
        denied_record = (
            await gw.client.get(f"/v1/audit/requests/{denied}", headers=bearer(auditor))
        ).json()
    assert (denied_record["status"], denied_record["http_status"]) == ("denied", 429)
    assert denied_record["error_code"] == "rate_limited"
    [decision] = denied_record["limit_decisions"]
    assert (decision["outcome"], decision["limit"], decision["limit_value"]) == (
        "rate_limited",
        "tenant.requests",
        2,
    )
    assert decision["retry_after_s"] > 0
    expected = (2.0 * ok_record["prompt_tokens"] + 4.0 * ok_record["completion_tokens"]) / 1000
    assert ok_record["cost"] == pytest.approx(expected) and expected > 0
    assert ok_record["limit_decisions"] == []


async def test_admin_actions_are_kept_newest_first(stack: Stack) -> None:
    async with stack.gateway() as gw:
        for target in ("k1", "k2"):
            gw.services.audit.write(
                AdminAction(
                    at=now_rfc3339(),
                    actor="kadmin",
                    action="keys.revoke",
                    target=target,
                    details={"reason": "test"},
                )
            )
        for _ in range(100):
            actions = await gw.services.audit.admin_actions()
            if len(actions) == 2:
                break
            await asyncio.sleep(0.01)
    assert [(a.actor, a.action, a.target) for a in actions] == [
        ("kadmin", "keys.revoke", "k2"),
        ("kadmin", "keys.revoke", "k1"),
    ]
    assert actions[0].details == {"reason": "test"}
