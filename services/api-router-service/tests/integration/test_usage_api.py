"""``GET /v1/usage`` and the admins' tenant routes: the month's figures are the sums of the
run's usage records, the budget in the ``RateLimit`` fields is the same counter, and no key
reads another tenant's month."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from api_router.limiter.limit_set import COST_UNIT
from tests.support.limits import write_policies
from tests.support.sse import parse_sse
from tests.support.stack import Stack, bearer, chat
from tests.support.usage_topic import TopicReader

POLICIES: dict[str, Any] = {
    "plans": {
        "metered": {
            "requests_per_second": 0.1,  # one more every 10 s: none during the run
            "burst": 5,
            "tokens_per_minute": 100_000,
            "budget": {"per_month": 10.0, "unit": "cost"},
        },
        "default": {"requests_per_second": 100},
    },
    "tenants": {"acme": {"plan": "metered"}, "globex": {"plan": "default"}},
    "models": {
        "llama3.2": {"prompt_price_per_1k": 0.3, "completion_price_per_1k": 0.7},
        "default": {"prompt_price_per_1k": 0.1, "completion_price_per_1k": 0.2},
    },
}


def _month(offset: int = 0) -> str:
    today = dt.datetime.now(dt.UTC)
    index = today.year * 12 + today.month - 1 + offset
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


async def test_the_month_is_the_sum_of_the_runs_usage_records(stack: Stack, tmp_path: Path) -> None:
    stack.worker("node-a")
    policies = write_policies(tmp_path / "policies.yaml", POLICIES)
    acme = await stack.create_key("acme")
    globex = await stack.create_key("globex")
    admin = await stack.create_key("ops", scopes=("admin",))
    asked: list[str] = []
    async with stack.gateway(limits={"policies_file": str(policies)}) as gw:
        await gw.wait_for_model("llama3.2")
        client = gw.client
        whole = [
            await client.post("/v1/inference", json=chat(content=f"hi {n}"), headers=bearer(acme))
            for n in range(3)
        ]
        streamed = await client.post(
            "/v1/inference",
            json=chat("qwen2.5:7b", "count to five", stream=True),
            headers=bearer(acme),
        )
        openai = await client.post(
            "/v1/chat/completions",
            json={"model": "llama3.2", "messages": [{"role": "user", "content": "and you"}]},
            headers=bearer(acme),
        )
        # The bucket (5) is spent: refused 429, which costs nothing and counts nothing.
        refused = await client.post("/v1/inference", json=chat(), headers=bearer(acme))
        other = await client.post("/v1/inference", json=chat(), headers=bearer(globex))
        await gw.services.admission.settled()
        asked = [r.headers["x-request-id"] for r in (*whole, streamed, openai, refused, other)]
        own = await client.get("/v1/usage", headers=bearer(acme))
        by_admin = await client.get("/v1/admin/tenants/acme/usage", headers=bearer(admin))
        listing = await client.get("/v1/admin/tenants", headers=bearer(admin))
        last_month = await client.get(
            "/v1/usage", params={"month": _month(-1)}, headers=bearer(acme)
        )
    assert [r.status_code for r in (*whole, streamed, openai, refused, other)] == [200] * 5 + [
        429,
        200,
    ]
    budget_fields = whole[-1].headers["RateLimit-Policy"].split(", ")[-1]
    assert budget_fields.startswith('"tenant.budget";q=10000000;w=')
    assert len(parse_sse(streamed.text)[0]) > 1

    records = await TopicReader(stack.broker.bootstrap, stack.usage_topic).read_covering(set(asked))
    ours = {r["request_id"]: r for r in records if r["tenant"] == "acme"}
    assert len(ours) == 6
    charged = [r for r in ours.values() if r["status"] == "ok"]
    assert len(charged) == 5
    report = own.json()
    assert own.status_code == 200 and by_admin.json() == report
    assert (report["tenant"], report["month"], report["plan"]) == ("acme", _month(), "metered")
    assert report["requests"] == len(charged)
    assert report["prompt_tokens"] == sum(r["prompt_tokens"] for r in ours.values()) > 0
    assert report["completion_tokens"] == sum(r["completion_tokens"] for r in ours.values()) > 0
    assert report["total_tokens"] == report["prompt_tokens"] + report["completion_tokens"]
    cost_units = sum(round(r["cost"] * COST_UNIT) for r in ours.values())
    assert round(report["cost"] * COST_UNIT) == cost_units > 0
    for model in ("llama3.2", "qwen2.5:7b"):
        of_model = [r for r in charged if r["model"] == model]
        counted = report["models"][model]
        assert counted["requests"] == len(of_model) > 0
        assert counted["completion_tokens"] == sum(r["completion_tokens"] for r in of_model)
        assert round(counted["cost"] * COST_UNIT) == sum(
            round(r["cost"] * COST_UNIT) for r in of_model
        )
    # The budget's counter is the same figure, once every request is settled.
    assert report["budget"] == {
        "unit": "cost",
        "per_month": 10.0,
        "spent": report["cost"],
        "remaining": round(10.0 - report["cost"], 6),
    }
    assert report["limits"] == {
        "requests_per_second": 0.1,
        "burst": 5,
        "tokens_per_minute": 100_000,
        "max_concurrent": None,
        "queue_max_wait_ms": 0,
        "default_reservation_tokens": 256,
        "models": {},
    }
    tenants = {t["tenant"]: t for t in listing.json()["data"]}
    assert set(tenants) == {"acme", "globex", "ops"}
    assert tenants["acme"] == {
        "tenant": "acme",
        "plan": "metered",
        "keys": 1,
        "requests": 5,
        "total_tokens": report["total_tokens"],
        "cost": report["cost"],
        "budget": report["budget"],
    }
    assert (tenants["globex"]["requests"], tenants["globex"]["budget"]) == (1, None)
    assert (tenants["ops"]["plan"], tenants["ops"]["requests"]) == ("default", 0)
    assert last_month.json()["requests"] == 0 and last_month.json()["models"] == {}


async def test_no_key_reads_another_tenants_month(stack: Stack, tmp_path: Path) -> None:
    policies = write_policies(tmp_path / "policies.yaml", POLICIES)
    acme = await stack.create_key("acme", scopes=("inference", "audit:read"))
    admin = await stack.create_key("ops", scopes=("admin",))
    async with stack.gateway(limits={"policies_file": str(policies)}) as gw:
        client = gw.client
        asked = await client.get("/v1/usage", params={"tenant": "globex"}, headers=bearer(acme))
        own_named = await client.get("/v1/usage", params={"tenant": "acme"}, headers=bearer(acme))
        admin_route = await client.get("/v1/admin/tenants/globex/usage", headers=bearer(acme))
        listing = await client.get("/v1/admin/tenants", headers=bearer(acme))
        admin_asked = await client.get(
            "/v1/usage", params={"tenant": "globex"}, headers=bearer(admin)
        )
        unknown = await client.get("/v1/admin/tenants/nobody/usage", headers=bearer(admin))
        bad_month = await client.get("/v1/usage", params={"month": "2026-13"}, headers=bearer(acme))
        nobody = await client.get("/v1/usage")
    assert (asked.status_code, asked.json()["error"]["code"]) == (403, "forbidden")
    assert "/v1/admin/tenants/{tenant}/usage" in asked.json()["error"]["message"]
    assert own_named.status_code == 200 and own_named.json()["tenant"] == "acme"
    for refused in (admin_route, listing):
        assert (refused.status_code, refused.json()["error"]["code"]) == (
            403,
            "insufficient_scope",
        )
    assert admin_asked.status_code == 403  # admins read other tenants on the admin route
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "not_found")
    assert (bad_month.status_code, bad_month.json()["error"]["code"]) == (400, "invalid_request")
    assert nobody.status_code == 401


@pytest.mark.parametrize("months_ago", [13, 12])
async def test_a_new_months_first_request_drops_months_past_the_kept_year(
    stack: Stack, months_ago: int
) -> None:
    stack.worker("node-a")
    key = await stack.create_key("acme")
    old = _month(-months_ago)
    with stack.redis.client() as redis:
        redis.hset(stack.keys.budget("acme"), mapping={old: 5, f"{old}:llama3.2:requests": 2})
    async with stack.gateway() as gw:
        await gw.wait_for_model("llama3.2")
        answer = await gw.client.post("/v1/inference", json=chat(), headers=bearer(key))
        await gw.services.admission.settled()
    assert answer.status_code == 200
    with stack.redis.client() as redis:
        fields = {f.decode() for f in redis.hkeys(stack.keys.budget("acme"))}
    kept = months_ago <= 12  # this month and the twelve before it
    assert (f"{old}:llama3.2:requests" in fields) is kept
    assert f"{_month()}:llama3.2:requests" in fields
