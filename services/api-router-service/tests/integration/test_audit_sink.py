"""The audit sink against a real PostgreSQL and the real broker: every request of a run is
stored exactly once, even across a SIGKILL of the sink; reads come from PostgreSQL once the
recent window is gone; partitions past the retention are dropped whole."""

from __future__ import annotations

import asyncio
import datetime as dt
import signal
from collections import Counter

import httpx
import psycopg

from api_router.usage import audit_partitions
from api_router.usage.audit_migrations import migrate
from api_router.usage.record import AdminAction, now_rfc3339
from tests.support.audit_rows import action_rows, partition_days, request_rows
from tests.support.limits import write_policies
from tests.support.servers import eventually
from tests.support.stack import Gateway, Stack, bearer, chat

# 60 admitted per tenant, then 429: a run has answered and refused requests.
_POLICIES = {
    "plans": {"p": {"requests_per_second": 0.001, "burst": 60}},
    "tenants": {"acme": {"plan": "p"}},
}


async def test_every_request_has_one_row_across_a_sink_killed_mid_run(
    audited_stack: Stack,
) -> None:
    stack = audited_stack
    assert stack.database_url is not None
    url = stack.database_url
    policies = write_policies(stack.tmp / "policies.yaml", _POLICIES)
    stack.worker("node-a", "--backend", "mock", "--models", "m")
    key = await stack.create_key("acme")
    sink = stack.audit_sink()
    async with stack.gateway(limits={"policies_file": str(policies)}) as gw:
        await gw.wait_for_model("m")
        answers = [await _ask(gw, key) for _ in range(40)]
        await eventually(lambda: len(request_rows(url)) >= 10, 60, "first rows stored")
        # Mid-run: requests keep coming while the sink is dead, then while it restarts.
        sink.send(signal.SIGKILL)
        sink.wait()
        answers += [await _ask(gw, key) for _ in range(40)]
        stack.audit_sink("audit-sink-2")
        answers += [await _ask(gw, key) for _ in range(20)]
        gw.services.audit.write(
            AdminAction(at=now_rfc3339(), actor="kadmin", action="keys.revoke", target="k1")
        )
        await eventually(lambda: len(request_rows(url)) >= len(answers), 120, "all rows stored")
        await eventually(lambda: len(action_rows(url)) == 1, 30, "the admin action stored")
    statuses = {a.headers["x-request-id"]: a.status_code for a in answers}
    assert Counter(statuses.values()) == {200: 60, 429: 40}
    rows = request_rows(url)
    assert Counter(r["request_id"] for r in rows) == Counter(list(statuses))  # each once
    assert {r["request_id"]: r["http_status"] for r in rows} == statuses
    denied = [r for r in rows if r["http_status"] == 429]
    assert {(r["status"], r["limit_decisions"][0]["limit"]) for r in denied} == {
        ("denied", "tenant.requests")
    }
    assert {r["node_id"] for r in rows if r["status"] == "ok"} == {"node-a"}
    assert {r["routing"]["outcome"] for r in rows if r["status"] == "ok"} == {"dispatched"}
    [action] = action_rows(url)
    assert (action["actor"], action["action"], action["target"]) == ("kadmin", "keys.revoke", "k1")


async def _ask(gw: Gateway, key: str) -> httpx.Response:
    return await gw.client.post("/v1/inference", json=chat("m"), headers=bearer(key))


async def test_lookups_read_postgres_once_the_recent_window_is_gone(
    audited_stack: Stack,
) -> None:
    stack = audited_stack
    assert stack.database_url is not None
    url = stack.database_url
    stack.worker("node-a")
    acme = await stack.create_key("acme")
    auditor = await stack.create_key("acme", scopes=["audit:read"])
    globex_auditor = await stack.create_key("globex", scopes=["audit:read"])
    admin = await stack.create_key("ops", scopes=["admin"])
    stack.audit_sink()
    async with stack.gateway() as gw:
        await gw.wait_for_model("llama3.2")
        answer = await gw.client.post("/v1/inference", json=chat(), headers=bearer(acme))
        request_id = answer.headers["x-request-id"]
        await eventually(lambda: len(request_rows(url)) == 1, 30, "the row stored")
        recent = await gw.client.get(f"/v1/audit/requests/{request_id}", headers=bearer(auditor))
        with stack.redis.client() as client:  # as if the recent window had passed
            assert client.delete(stack.keys.audit_record(request_id)) == 1

        async def lookup(key: str) -> httpx.Response:
            return await gw.client.get(f"/v1/audit/requests/{request_id}", headers=bearer(key))

        own, other, by_admin = (
            await lookup(auditor),
            await lookup(globex_auditor),
            await lookup(admin),
        )
        listing = await gw.client.get(
            "/v1/audit/requests", params={"tenant": "acme"}, headers=bearer(admin)
        )
    assert recent.status_code == own.status_code == by_admin.status_code == 200
    assert own.json() == recent.json() == by_admin.json()
    assert (own.json()["request_id"], own.json()["tenant"]) == (request_id, "acme")
    assert other.status_code == 404 and other.json()["error"]["code"] == "not_found"
    assert listing.json() == {"data": [recent.json()], "next_cursor": None}
    with stack.redis.client() as client:  # the recent window has no index of any kind
        assert not client.keys(f"{stack.prefix}:audit-index*")


async def test_partitions_past_the_retention_are_dropped(audited_stack: Stack) -> None:
    stack = audited_stack
    assert stack.database_url is not None
    url = stack.database_url
    today = dt.datetime.now(dt.UTC).date()
    old_days = [today - dt.timedelta(days=n) for n in (45, 31, 30, 29, 1)]
    async with await psycopg.AsyncConnection.connect(url) as conn:
        await migrate(conn)
        async with conn.transaction():
            for table in audit_partitions.TABLES:
                await audit_partitions.create(conn, table, old_days)
    stack.audit_sink(audit={"retention_days": 30})

    async def kept() -> set[dt.date]:
        return await partition_days(url, "audit_requests")

    for _ in range(600):
        if today - dt.timedelta(days=31) not in await kept():
            break
        await asyncio.sleep(0.05)
    expected = {today + dt.timedelta(days=n) for n in range(-30, 3)} & (
        set(old_days) | {today + dt.timedelta(days=n) for n in range(3)}
    )
    assert await kept() == expected
    assert await partition_days(url, "audit_admin_actions") == expected
