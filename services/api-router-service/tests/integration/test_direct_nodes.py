"""Direct nodes (``transport: http``): the gateway calls a fake OpenAI-compatible server and
the fake Ollama itself, whole and streamed, on both APIs; fails over to and from worker
nodes; opens a node's breaker on failed probes; probes each node from one replica; and
serves an outage of Redis and Kafka in local-only mode, its records delivered after."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from api_router.config.last_known_good import Saved
from api_router.errors import ShuttingDown
from tests.support.fake_ollama import FakeOllama
from tests.support.fake_openai import FakeOpenAI
from tests.support.limits import routes
from tests.support.servers import TansuBroker, eventually
from tests.support.sse import parse_sse
from tests.support.stack import Gateway, Stack, bearer, chat, node_health
from tests.support.usage_topic import TopicReader

KEY = "sk-direct-0123456789"


@pytest.fixture
def vllm(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAI]:
    """A fake OpenAI-compatible server that wants a key (the gateway reads it from env)."""
    monkeypatch.setenv("VLLM_KEY", KEY)
    server = FakeOpenAI(models=["gpt-fake", "llama3.2"], api_key=KEY).start()
    yield server
    server.stop()


def direct(node_id: str, url: str, flavour: str = "openai", **extra: Any) -> dict[str, Any]:
    return {"node_id": node_id, "base_url": url, "flavour": flavour, **extra}


def vllm_node(server: FakeOpenAI, **extra: Any) -> dict[str, Any]:
    return direct("vllm-1", f"{server.url}/v1", pool="gpu", api_key_env="VLLM_KEY", **extra)


async def post(gw: Gateway, key: str, **extra: Any) -> Any:
    return await gw.client.post("/v1/inference", json=chat(**extra), headers=bearer(key))


async def audited_node(gw: Gateway, request_id: str) -> str | None:
    for _ in range(200):
        record = await gw.services.audit.get(request_id)
        if record is not None:
            return record.node_id
        await asyncio.sleep(0.025)
    raise TimeoutError(f"no audit record for {request_id}")


async def test_a_direct_openai_node_answers_whole_and_streamed_on_both_apis(
    stack: Stack, vllm: FakeOpenAI
) -> None:
    key = await stack.create_key()
    async with stack.gateway(direct={"nodes": [vllm_node(vllm)]}) as gw:
        await gw.wait_for_model("gpt-fake")
        whole = await post(gw, key, model="gpt-fake")
        assert whole.status_code == 200, whole.text
        body = whole.json()
        assert body["node_id"] == "vllm-1"
        assert whole.headers["x-route-node"] == "vllm-1"
        assert whole.headers["x-route-attempts"] == "1"
        assert body["message"]["content"].startswith("fake openai")
        assert body["usage"]["completion_tokens"] > 0
        assert body["timings"]["total_ms"] >= body["timings"]["inference_ms"] > 0
        assert await audited_node(gw, whole.headers["x-request-id"]) == "vllm-1"

        streamed = await post(gw, key, model="gpt-fake", stream=True)
        assert streamed.status_code == 200, streamed.text
        events, _ = parse_sse(streamed.text)
        text = "".join(e.json()["delta"] for e in events if e.event == "chunk")
        done = events[-1].json()
        assert events[-1].event == "done" and done["node_id"] == "vllm-1"
        assert text == body["message"]["content"]
        assert done["usage"]["completion_tokens"] == body["usage"]["completion_tokens"]

        openai_chat = {"model": "gpt-fake", "messages": [{"role": "user", "content": "hi"}]}
        answer = await gw.client.post("/v1/chat/completions", json=openai_chat, headers=bearer(key))
        assert answer.status_code == 200, answer.text
        assert answer.json()["choices"][0]["message"]["content"].startswith("fake openai")
        assert answer.headers["x-route-node"] == "vllm-1"
        chunks = await gw.client.post(
            "/v1/chat/completions", json={**openai_chat, "stream": True}, headers=bearer(key)
        )
        frames, _ = parse_sse(chunks.text)
        assert frames[-1].data == "[DONE]"
        deltas = [f.json()["choices"][0]["delta"].get("content") or "" for f in frames[:-1]]
        assert "".join(deltas).startswith("fake openai")

        vectors = await gw.client.post(
            "/v1/embeddings", json={"model": "gpt-fake", "input": ["a b", "c"]}, headers=bearer(key)
        )
        assert vectors.status_code == 200, vectors.text
        assert [len(item["embedding"]) for item in vectors.json()["data"]] == [8, 8]
    # The key went to the backend on every call (probes included), from the environment.
    assert vllm.authorizations and set(vllm.authorizations) == {f"Bearer {KEY}"}
    assert len(vllm.chats) == 4 and len(vllm.embeds) == 1


async def test_a_direct_ollama_node_reports_its_loaded_models_and_answers(
    stack: Stack, fake_ollama: FakeOllama
) -> None:
    fake_ollama.reset(available=["llama3.2:latest", "qwen2.5:7b"], loaded=["llama3.2:latest"])
    key = await stack.create_key()
    admin = await stack.create_key("ops", scopes=("admin",))
    node = direct("gpu-box", fake_ollama.url, "ollama", max_concurrency=4)
    async with stack.gateway(direct={"nodes": [node]}) as gw:
        await gw.wait_for_model("qwen2.5:7b")
        view = (await gw.client.get("/v1/admin/routing", headers=bearer(admin))).json()
        [entry] = [n for n in view["nodes"] if n["node_id"] == "gpu-box"]
        assert entry["transport"] == "http" and entry["state"] == "healthy"
        assert entry["models_loaded"] == ["llama3.2:latest"]
        assert entry["max_concurrency"] == 4 and entry["pool"] == "direct"
        whole = await post(gw, key)
        assert whole.status_code == 200, whole.text
        assert whole.json()["node_id"] == "gpu-box"
        assert whole.json()["message"]["content"].startswith("fake ollama")
        streamed = await post(gw, key, stream=True)
        events, _ = parse_sse(streamed.text)
        assert events[-1].event == "done" and events[-1].json()["node_id"] == "gpu-box"
        text = "".join(e.json()["delta"] for e in events if e.event == "chunk")
        assert text == whole.json()["message"]["content"]
        # The registry holds the probe's entry for the other replicas.
        with stack.redis.client() as client:
            assert client.hexists(stack.keys.health, "gpu-box")
    assert len(fake_ollama.chats) == 2


async def test_failover_from_a_direct_node_to_a_worker_node_and_back(
    stack: Stack, vllm: FakeOpenAI
) -> None:
    stack.worker("node-a", pool="edge")
    key = await stack.create_key()
    limits = routes(stack.tmp, {"gpu": 1}, {"edge": 1})
    async with stack.gateway(limits=limits, direct={"nodes": [vllm_node(vllm)]}) as gw:
        await gw.wait_for_model("llama3.2", nodes=2)
        vllm.fail_status = 503
        whole = await post(gw, key)
        assert whole.status_code == 200, whole.text
        assert whole.json()["node_id"] == "node-a"
        assert whole.headers["x-route-attempts"] == "2"
        streamed = await post(gw, key, stream=True)
        events, _ = parse_sse(streamed.text)
        assert events[-1].event == "done" and events[-1].json()["node_id"] == "node-a"
        assert streamed.headers["x-route-attempts"] == "2"
        record = None
        for _ in range(200):
            record = await gw.services.audit.get(whole.headers["x-request-id"])
            if record is not None:
                break
            await asyncio.sleep(0.025)
        assert record is not None
        assert [(t.node_id, t.error) for t in record.routing.tried] == [
            ("vllm-1", "upstream_error"),
            ("node-a", None),
        ]
        vllm.fail_status = None
        back = await post(gw, key)
        assert back.json()["node_id"] == "vllm-1"
        assert back.headers["x-route-attempts"] == "1"


async def test_failover_from_a_silent_worker_node_to_a_direct_node(
    stack: Stack, vllm: FakeOpenAI
) -> None:
    # A node with a job stream but no worker: it never accepts.
    stack.put_health(node_health("ghost", pool="edge", models_loaded=["llama3.2"]))
    with stack.redis.client() as client:
        client.xgroup_create(stack.keys.job_stream("ghost"), "workers", id="0", mkstream=True)
    key = await stack.create_key()
    limits = routes(stack.tmp, {"edge": 1}, {"gpu": 1})
    async with stack.gateway(
        limits=limits,
        direct={"nodes": [vllm_node(vllm)]},
        dispatch={"accept_timeout_s": 0.3},
    ) as gw:
        await gw.wait_for_model("llama3.2", nodes=2)
        for stream in (False, True):
            answer = await post(gw, key, stream=stream)
            assert answer.status_code == 200, answer.text
            assert answer.headers["x-route-node"] == "vllm-1"
            assert answer.headers["x-route-attempts"] == "2"


async def test_failed_probes_open_the_breaker_and_mark_the_node_unavailable(
    stack: Stack, vllm: FakeOpenAI
) -> None:
    key = await stack.create_key()
    settings = {"nodes": [vllm_node(vllm)], "probe_interval_s": 0.05}
    async with stack.gateway(direct=settings, routing={"breaker_failures": 2}) as gw:
        await gw.wait_for_model("gpt-fake")
        vllm.api_key = "another key"  # from now on every probe is refused (401)
        breakers = gw.services.router.breakers
        await eventually(lambda: breakers.state("vllm-1") == "open", what="breaker open")
        assert gw.services.health.snapshot.states["vllm-1"] == "unavailable"
        refused = await post(gw, key, model="gpt-fake")
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "no_capacity"


async def test_calls_to_a_direct_node_that_stops_answering_its_probes_fail_over(
    stack: Stack, vllm: FakeOpenAI
) -> None:
    stack.worker("node-a", pool="edge")
    key = await stack.create_key()
    limits = routes(stack.tmp, {"gpu": 1}, {"edge": 1})  # the direct node first
    settings = {"nodes": [vllm_node(vllm)], "probe_interval_s": 0.1}
    async with stack.gateway(limits=limits, direct=settings) as gw:
        await gw.wait_for_model("llama3.2", nodes=2)
        vllm.delay_s = 60.0  # hung: it takes requests and never answers them
        calls = [asyncio.create_task(post(gw, key, stream=stream)) for stream in (False, True)]
        await eventually(lambda: len(vllm.chats) == 2, what="both calls at the hung node")
        vllm.api_key = "another key"  # ... and from now on its probes fail
        answers = await asyncio.gather(*calls)
        lost = gw.services.transports.direct.nodes.get("vllm-1")
        assert lost is not None and lost.inflight == 0
    for answer in answers:
        assert answer.status_code == 200, answer.text
        assert answer.headers["x-route-node"] == "node-a"
        assert answer.headers["x-route-attempts"] == "2"


async def test_one_replica_of_two_probes_a_direct_node_under_its_lease(
    stack: Stack, vllm: FakeOpenAI
) -> None:
    # Rounds are made by the test (the background ones are 60 s apart), so what each
    # replica does is decided by the lease alone, however loaded the machine.
    settings = {"nodes": [vllm_node(vllm)], "probe_interval_s": 60.0}
    async with (
        stack.gateway(direct=settings, server={"instance_id": "gw-a"}) as a,
        stack.gateway(direct=settings, server={"instance_id": "gw-b"}) as b,
    ):
        for _ in range(3):
            await b.services.prober.probe_all()
            await a.services.prober.probe_all()
        with stack.redis.client() as client:
            assert client.get(stack.keys.probe_lease("vllm-1")) == b"gw-a"  # started first
            # The replica without the lease routes by the entry the other one published.
            await b.services.health.refresh()
            assert b.services.health.snapshot.states["vllm-1"] == "healthy"
            assert (a.services.prober.probes, b.services.prober.probes) == (4, 0)
            client.delete(stack.keys.probe_lease("vllm-1"))  # as when gw-a stops renewing
        await b.services.prober.probe_all()
        await a.services.prober.probe_all()
        with stack.redis.client() as client:
            assert client.get(stack.keys.probe_lease("vllm-1")) == b"gw-b"
        assert (a.services.prober.probes, b.services.prober.probes) == (4, 1)


async def test_without_redis_every_replica_probes_its_direct_nodes_itself(
    own_redis_stack: Stack, vllm: FakeOpenAI
) -> None:
    stack = own_redis_stack
    settings = {"nodes": [vllm_node(vllm)], "probe_interval_s": 60.0}
    health = {"fresh_s": 1.0, "refresh_interval_s": 0.1}
    async with (
        stack.gateway(direct=settings, health=health, server={"instance_id": "a"}) as a,
        stack.gateway(direct=settings, health=health, server={"instance_id": "b"}) as b,
    ):
        await b.services.prober.probe_all()
        assert b.services.prober.probes == 0  # a holds the lease
        stack.redis.stop()
        await asyncio.sleep(1.2)  # past fresh_s: the entries read from Redis are stale now
        for gw in (a, b):
            await gw.services.prober.probe_all()
        for gw in (a, b):
            snapshot = gw.services.health.snapshot
            assert snapshot.states["vllm-1"] == "healthy"
            assert [n.node_id for n in snapshot.candidates("gpt-fake")] == ["vllm-1"]
        assert (a.services.prober.probes, b.services.prober.probes) == (2, 1)


@pytest.fixture
def own_broker(own_redis_stack: Stack) -> Iterator[TansuBroker]:
    """A broker of the test's own, which it may stop and start again (empty: Tansu keeps
    topics and messages in memory) on the same port."""
    broker = TansuBroker().start()
    own_redis_stack.broker = broker
    yield broker
    broker.stop()


async def test_an_outage_of_redis_and_kafka_is_served_in_local_only_mode_and_billed_after(
    own_redis_stack: Stack, own_broker: TansuBroker, vllm: FakeOpenAI
) -> None:
    stack = own_redis_stack
    stack.worker("node-a", pool="edge")
    key = await stack.create_key()
    limits = routes(stack.tmp, {"edge": 1}, {"gpu": 1})  # the streams node first
    served: dict[str, str] = {}  # request id -> the node that answered it
    async with stack.gateway(limits=limits, direct={"nodes": [vllm_node(vllm)]}) as gw:
        await gw.wait_for_model("llama3.2", nodes=2)
        warm = await post(gw, key)
        assert warm.headers["x-route-node"] == "node-a"
        await eventually(lambda: gw.services.usage.depth == 0, 30, "first records shipped")
        # What the first broker acknowledged is gone with it: read it before stopping it.
        warm_id = {warm.headers["x-request-id"]: "node-a"}
        assert await delivered(stack, stack.usage_topic, warm_id) == warm_id
        assert await delivered(stack, stack.audit_topic, warm_id) == warm_id
        stack.redis.stop()
        own_broker.stop()
        # The key as last verified, the plan's fail_open local limits, the direct node by
        # its own probes; the streams node skipped at once (its stream is out of reach).
        for stream in (False, True, False, True):
            answer = await post(gw, key, stream=stream)
            assert answer.status_code == 200, answer.text
            assert answer.headers["x-route-node"] == "vllm-1"
            assert answer.headers["x-route-attempts"] == "1"
            served[answer.headers["x-request-id"]] = "vllm-1"
        ready = await gw.client.get("/v1/status/readyz")
        assert ready.status_code == 200
        assert ready.json()["components"]["redis"] == {
            "status": "degraded",
            "detail": "redis did not answer PING; local-only mode: 1 direct node(s) serve",
        }
        # A usage record and an audit message per request, waiting on disk.
        assert gw.services.usage.depth == 2 * len(served)
        stack.redis.start()  # the same port, empty
        own_broker.start()  # the same port, empty: no topic
        await eventually(lambda: gw.services.usage.depth == 0, 30, "spool drained")
    assert await delivered(stack, stack.usage_topic, served) == served
    assert await delivered(stack, stack.audit_topic, served) == served


async def delivered(stack: Stack, topic: str, expected: dict[str, str]) -> dict[str, str]:
    """Request id -> node id of every request with a message in ``topic``, read until
    ``expected``'s requests all have one (or a timeout); duplicates, which at-least-once
    delivery allows, deduped by ``record_id`` as consumers do."""
    messages = await TopicReader(stack.broker.bootstrap, topic).read_covering(set(expected))
    unique = {m["record_id"]: m.get("request") or m for m in messages if not m.get("action")}
    nodes = {record["request_id"]: record["node_id"] for record in unique.values()}
    assert len(nodes) == len(unique), "a request with two records"
    return nodes


async def test_calls_in_flight_to_a_direct_node_are_answered_shutting_down(
    stack: Stack, vllm: FakeOpenAI
) -> None:
    key = await stack.create_key()
    async with stack.gateway(direct={"nodes": [vllm_node(vllm)]}) as gw:
        await gw.wait_for_model("gpt-fake")
        vllm.delay_s = 5.0
        calls = [
            asyncio.create_task(post(gw, key, model="gpt-fake", stream=stream))
            for stream in (False, True)
        ]
        await eventually(lambda: len(vllm.chats) == 2, what="both calls at the backend")
        gw.services.transports.stop(ShuttingDown("the gateway shut down"))
        answers = await asyncio.gather(*calls)
        assert [a.status_code for a in answers] == [503, 503]
        assert {a.json()["error"]["code"] for a in answers} == {"shutting_down"}
        assert gw.services.transports.direct.nodes.get("vllm-1").inflight == 0  # type: ignore[union-attr]


async def test_a_gateway_restarted_while_redis_is_down_serves_from_its_last_known_good_cache(
    own_redis_stack: Stack, vllm: FakeOpenAI
) -> None:
    stack = own_redis_stack
    key = await stack.create_key()
    admin = await stack.create_key("ops", scopes=("admin",))
    nodes = [vllm_node(vllm), {**vllm_node(vllm), "node_id": "vllm-2"}]
    cache: dict[str, Any] = {"path": str(stack.tmp / "lkg.sqlite"), "save_interval_s": 0.05}
    settings: dict[str, dict[str, Any]] = {"direct": {"nodes": nodes}, "last_known_good": cache}
    async with stack.gateway(**settings) as gw:
        await gw.wait_for_model("gpt-fake", nodes=2)
        drained = await gw.client.post(
            "/v1/admin/routing/nodes/vllm-2/drain", json={"reason": "r"}, headers=bearer(admin)
        )
        assert drained.status_code == 201, drained.text
        assert (await post(gw, key, model="gpt-fake")).status_code == 200  # the key verified
        await _saved(gw, lambda saved: bool(saved.keys and saved.overrides))
    stack.redis.stop()
    async with stack.gateway(**settings) as gw:
        await gw.wait_for_model("gpt-fake", nodes=2)
        for _ in range(5):
            answer = await post(gw, key, model="gpt-fake")
            assert answer.status_code == 200, answer.text
            assert answer.headers["x-route-node"] == "vllm-1"  # vllm-2 stays drained
        ready = (await gw.client.get("/v1/status/readyz")).json()
        assert "from the last-known-good cache" in ready["components"]["redis"]["detail"]
    stale = {"last_known_good": {**cache, "max_age_s": 0.001}}
    async with stack.gateway(**{**settings, **stale}) as gw:
        refused = await post(gw, key, model="gpt-fake")
        assert refused.status_code == 503  # the key is too old to be trusted


async def _saved(gw: Gateway, holds: Callable[[Saved], bool]) -> None:
    """Wait until the gateway's last-known-good file holds what ``holds`` wants."""
    for _ in range(400):
        saved = await gw.services.last_known_good.load()
        if saved is not None and holds(saved):
            return
        await asyncio.sleep(0.025)
    raise TimeoutError("the last-known-good cache was never written")
