"""The core paths on a real Redis Cluster (three primaries, every slot served): gateways,
workers and the CLI configured with ``redis.mode: cluster`` and the seed nodes only."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import Any

import httpx

from api_router.keyspace import WORKER_GROUP
from tests.integration.test_worker import request_mid_job
from tests.support.fake_ollama import FakeOllama
from tests.support.limits import one_plan, routes, write_policies
from tests.support.redis_topologies import RedisClusterNodes
from tests.support.servers import eventually
from tests.support.signing import SigningKey, sign
from tests.support.sse import parse_sse
from tests.support.stack import Stack, bearer, chat
from tests.support.usage_topic import TopicReader

MOCK = ("--backend", "mock", "--models", "m", "--max-concurrency", "16")


def slot_owners(stack: Stack[RedisClusterNodes], *keys: str) -> set[int]:
    """The ports of the cluster nodes that serve ``keys``."""
    with stack.redis.client() as client:
        return {client.get_node_from_key(key).port for key in keys}  # type: ignore[no-untyped-call]


async def test_api_keys_and_signed_requests_with_nonces(
    cluster_stack: Stack[RedisClusterNodes],
) -> None:
    stack = cluster_stack
    stack.worker("node-a")
    issued = await stack.issue_key()
    key = SigningKey.of(issued)
    raw = json.dumps(chat()).encode()
    signed = {"content-type": "application/json", **sign(key, "POST", "/v1/inference", raw)}
    async with stack.gateway() as gw:
        await gw.wait_for_model("llama3.2")
        by_key = await gw.client.post("/v1/inference", json=chat(), headers=bearer(issued.api_key))
        first = await gw.client.post("/v1/inference", content=raw, headers=signed)
        replayed = await gw.client.post("/v1/inference", content=raw, headers=signed)
        fresh = {"content-type": "application/json", **sign(key, "POST", "/v1/inference", raw)}
        second = await gw.client.post("/v1/inference", content=raw, headers=fresh)
        unknown = await gw.client.post(
            "/v1/inference", json=chat(), headers=bearer(issued.api_key[:-4] + "abcd")
        )
    assert by_key.status_code == 200, by_key.text
    assert by_key.json()["message"]["content"]
    assert (first.status_code, second.status_code) == (200, 200), first.text
    assert replayed.status_code == 401
    assert replayed.json()["error"]["code"] == "replayed_request"
    assert unknown.json()["error"]["code"] == "invalid_api_key"
    # The record, the tenant's key set and the tenants set live on different nodes: the
    # creation did not need them in one slot.
    keys = (stack.keys.api_key(key.key_id), stack.keys.tenant_keys("acme"), stack.keys.tenants)
    assert len(slot_owners(stack, *keys)) > 1
    async with stack.key_store() as store:
        assert [r.id for r in await store.of_tenant("acme")] == [key.key_id]
        assert await store.tenants() == {"acme": 1}


async def test_a_revocation_is_seen_by_a_second_gateway(
    cluster_stack: Stack[RedisClusterNodes],
) -> None:
    stack = cluster_stack
    stack.worker("node-a")
    admin = await stack.create_key("ops", scopes=("admin",))
    # The revocation publishes its notice from the script that changes the record, so on
    # the record's node; gateways subscribe on the node serving the channel's slot. A key
    # whose record lives elsewhere shows the cluster forwarding the notice between nodes.
    (channel_node,) = slot_owners(stack, stack.keys.key_events)
    for _ in range(30):
        key = await stack.create_key()
        if slot_owners(stack, stack.keys.api_key(key.split("_")[1])) != {channel_node}:
            break
    else:
        raise AssertionError("30 keys in a row on the channel's node")
    # Cached for an hour: only the change notice can make the second gateway forget it.
    cached = {"auth": {"key_cache_ttl_s": 3600}}
    async with stack.gateway(**cached) as first, stack.gateway(**cached) as second:
        await second.wait_for_model("llama3.2")
        before = await second.client.post("/v1/inference", json=chat(), headers=bearer(key))
        key_id = key.split("_")[1]
        revoked = await first.client.post(f"/v1/admin/keys/{key_id}/revoke", headers=bearer(admin))
        assert revoked.status_code == 200, revoked.text
        statuses: list[int] = []

        async def refused() -> bool:
            answer = await second.client.post("/v1/inference", json=chat(), headers=bearer(key))
            statuses.append(answer.status_code)
            return answer.status_code == 401 and answer.json()["error"]["code"] == "key_revoked"

        for _ in range(250):
            if await refused():
                break
            await asyncio.sleep(0.02)
    assert before.status_code == 200, before.text
    assert statuses[-1] == 401, f"the second gateway still accepts the key: {statuses[-5:]}"


async def test_a_burst_of_10_admits_exactly_10_of_200_across_two_gateways(
    cluster_stack: Stack[RedisClusterNodes], tmp_path: Path
) -> None:
    stack = cluster_stack
    policies = write_policies(tmp_path / "p.yaml", one_plan(requests_per_second=0.001, burst=10))
    # A slow answer from the limiter must not fail open: the count is what is tested.
    limits = {"policies_file": str(policies), "store_timeout_s": 5.0}
    stack.worker("node-a", *MOCK)
    gateways = [stack.gateway_process(f"gateway-{i}", limits=limits) for i in range(2)]
    key = await stack.create_key("acme")
    async with httpx.AsyncClient(timeout=60) as client:
        responses = await asyncio.gather(
            *(
                client.post(f"{gw.url}/v1/inference", json=chat("m"), headers=bearer(key))
                for gw in gateways
                for _ in range(100)
            )
        )
    statuses = [r.status_code for r in responses]
    assert statuses.count(200) == 10, [r.text for r in responses if r.status_code != 429][:3]
    others = [r.text for r in responses if r.status_code not in (200, 429)]
    assert statuses.count(429) == 190, others[:3]
    assert {r.json()["error"]["code"] for r in responses if r.status_code == 429} == {
        "rate_limited"
    }


async def test_jobs_reach_workers_fail_over_when_one_is_killed_and_are_reclaimed(
    cluster_stack: Stack[RedisClusterNodes], fake_ollama: FakeOllama
) -> None:
    stack = cluster_stack
    doomed = stack.worker("node-a", pool="edge")
    stack.worker("node-b", pool="gpu")
    key = await stack.create_key()
    settings: dict[str, Any] = {
        "limits": routes(stack.tmp, {"edge": 1}, {"gpu": 1}),
        "dispatch": {"accept_timeout_s": 0.5},
    }
    async with stack.gateway(**settings) as gw:
        await gw.wait_for_model("llama3.2", nodes=2)
        first = await gw.client.post("/v1/inference", json=chat(), headers=bearer(key))
        doomed.send(signal.SIGKILL)
        doomed.wait()
        after = [
            await gw.client.post("/v1/inference", json=chat(), headers=bearer(key))
            for _ in range(3)
        ]
        streamed = await gw.client.post(
            "/v1/inference", json=chat(stream=True), headers=bearer(key)
        )
    assert first.status_code == 200 and first.json()["node_id"] == "node-a"
    assert [a.status_code for a in after] == [200] * 3
    assert [a.json()["node_id"] for a in after] == ["node-b"] * 3
    events, _ = parse_sse(streamed.text)
    assert streamed.status_code == 200 and events[-1].event == "done"
    assert events[-1].json()["node_id"] == "node-b"
    # The two nodes' streams sit on different cluster nodes here.
    streams = (stack.keys.job_stream("node-a"), stack.keys.job_stream("node-b"))
    assert len(slot_owners(stack, *streams)) == 2


async def test_a_killed_workers_job_is_reclaimed_by_its_restart(
    cluster_stack: Stack[RedisClusterNodes], fake_ollama: FakeOllama
) -> None:
    stack = cluster_stack
    fake_ollama.delay_s = 1.0
    first = stack.worker("node-a")
    key = await stack.create_key()
    async with stack.gateway() as gw:
        request = await request_mid_job(gw, key, fake_ollama)
        first.send(signal.SIGKILL)
        first.wait()
        fake_ollama.delay_s = 0.0
        stack.worker("node-a")  # XAUTOCLAIMs the job once its lease lapses
        response = await request
    assert response.status_code == 200, response.text
    assert response.json()["node_id"] == "node-a"
    assert len(fake_ollama.chats) == 2
    with stack.redis.client() as client:
        assert client.xpending(stack.keys.job_stream("node-a"), WORKER_GROUP)["pending"] == 0


async def test_a_drain_reaches_a_second_gateway_by_its_notice(
    cluster_stack: Stack[RedisClusterNodes],
) -> None:
    stack = cluster_stack
    stack.worker("node-a", pool="edge")
    stack.worker("node-b", pool="gpu")
    admin = await stack.create_key(scopes=("admin", "inference"))
    # Re-read once an hour: only the notice can tell the other gateway in time.
    other = stack.gateway_process("other", routing={"overrides_refresh_s": 3600})
    async with stack.gateway() as gw:
        await gw.wait_for_model("llama3.2", nodes=2)
        drained = await gw.client.post(
            "/v1/admin/routing/nodes/node-a/drain",
            json={"reason": "maintenance", "ttl_s": 600},
            headers=bearer(admin),
        )
        assert drained.status_code == 201, drained.text

        def drained_there() -> bool:
            view = httpx.get(f"{other.url}/v1/admin/routing", headers=bearer(admin), timeout=5)
            node = next(n for n in view.json()["nodes"] if n["node_id"] == "node-a")
            return bool(node["drained"])

        await eventually(drained_there, what="the drain on the other gateway")
    async with httpx.AsyncClient(base_url=other.url, headers=bearer(admin)) as client:
        answers = [await client.post("/v1/inference", json=chat()) for _ in range(4)]
    assert {a.json()["node_id"] for a in answers} == {"node-b"}


async def test_usage_records_and_the_months_figures(
    cluster_stack: Stack[RedisClusterNodes], tmp_path: Path
) -> None:
    stack = cluster_stack
    stack.worker("node-a")
    budget = {"per_month": 1_000_000, "unit": "tokens"}
    plan = {"requests_per_second": 100, "burst": 100, "budget": budget}
    policies = write_policies(tmp_path / "p.yaml", one_plan(**plan))
    key = await stack.create_key("acme")
    async with stack.gateway(limits={"policies_file": str(policies)}) as gw:
        await gw.wait_for_model("llama3.2")
        # At once: their settlements are written together, a pipeline across the nodes.
        answers = await asyncio.gather(
            *(
                gw.client.post("/v1/inference", json=chat(content=f"hi {n}"), headers=bearer(key))
                for n in range(4)
            )
        )
        await gw.services.admission.settled()
        usage = await gw.client.get("/v1/usage", headers=bearer(key))
    assert [a.status_code for a in answers] == [200] * 4
    asked = {a.json()["id"] for a in answers}
    records = await TopicReader(stack.broker.bootstrap, stack.usage_topic).read_covering(asked)
    ours = {r["request_id"]: r for r in records}
    assert set(ours) == asked
    assert {(r["tenant"], r["status"], r["node_id"]) for r in ours.values()} == {
        ("acme", "ok", "node-a")
    }
    report = usage.json()
    assert report["requests"] == 4
    assert report["prompt_tokens"] == sum(r["prompt_tokens"] for r in ours.values()) > 0
    assert report["completion_tokens"] == sum(r["completion_tokens"] for r in ours.values())
    assert report["budget"]["spent"] == report["total_tokens"]


def test_the_cli_creates_a_working_key_on_the_cluster(
    cluster_stack: Stack[RedisClusterNodes],
) -> None:
    stack = cluster_stack
    done = stack.cli("keys", "create", "--direct", "--tenant", "acme", "--json")
    assert done.returncode == 0, done.stderr.decode()
    created = json.loads(done.stdout)
    with stack.redis.client() as client:
        assert client.sismember(stack.keys.tenant_keys("acme"), created["id"])
        assert client.get(stack.keys.api_key(created["id"])) is not None
