"""Failover with real workers: retries before acceptance, killed workers, circuit breakers,
and the health margins. (Jobs a killed worker had accepted: test_lost_attempts.py.)"""

from __future__ import annotations

import asyncio
import signal
from typing import Any

from api_router.keyspace import WORKER_GROUP
from tests.support.fake_ollama import FakeOllama
from tests.support.limits import routes
from tests.support.servers import eventually
from tests.support.sse import parse_sse
from tests.support.stack import Gateway, Stack, chat, node_health


def ghost_node(stack: Stack, node_id: str, pool: str) -> None:
    """A healthy-looking node with a job stream but no worker: it never accepts."""
    stack.put_health(node_health(node_id, pool=pool, models_loaded=["llama3.2"]))
    with stack.redis.client() as client:
        client.xgroup_create(stack.keys.job_stream(node_id), WORKER_GROUP, id="0", mkstream=True)


async def post(gw: Gateway, key: str, **extra: Any) -> Any:
    return await gw.client.post("/v1/inference", json=chat(**extra), headers={"X-API-Key": key})


async def test_a_node_that_never_accepts_fails_over_and_the_decision_is_recorded(
    stack: Stack,
) -> None:
    ghost_node(stack, "ghost", pool="gpu")
    stack.worker("node-a", pool="edge")
    key = await stack.create_key()
    limits = routes(stack.tmp, {"gpu": 1}, {"edge": 1})
    async with stack.gateway(limits=limits, dispatch={"accept_timeout_s": 0.3}) as gw:
        await gw.wait_for_model("llama3.2", nodes=2)
        response = await post(gw, key)
        assert response.status_code == 200, response.text
        assert response.json()["node_id"] == "node-a"
        assert response.headers["x-route-node"] == "node-a"
        assert response.headers["x-route-attempts"] == "2"
        request_id = response.headers["x-request-id"]
        record = None
        for _ in range(100):
            record = await gw.services.audit.get(request_id)
            if record is not None:
                break
            await asyncio.sleep(0.05)
        metrics = (await gw.client.get("/metrics")).text
    assert record is not None
    routing = record.routing
    assert (routing.outcome, routing.attempts, routing.reason) == ("dispatched", 2, "sticky")
    assert routing.candidates == ["ghost", "node-a"]
    assert [(t.node_id, t.pool, t.reason, t.error) for t in routing.tried] == [
        ("ghost", "gpu", "sticky", "upstream_timeout"),
        ("node-a", "edge", "failover", None),
    ]
    assert record.node_id == "node-a" and record.pool == "edge"
    decision = 'api_router_routing_decisions_total{model="llama3.2",pool="gpu",reason="sticky"}'
    assert f"{decision} 1.0" in metrics
    assert 'api_router_routing_retries_total{model="llama3.2"} 1.0' in metrics
    # The abandoned attempt was cancelled (attempt 1 only), so its node drops it.
    with stack.redis.client() as client:
        reply = gw.services.replies.stream
        assert client.exists(stack.keys.cancel(reply, request_id, 1))
        assert not client.exists(stack.keys.cancel(reply, request_id, 2))


async def test_an_idle_worker_killed_costs_no_request(stack: Stack) -> None:
    doomed = stack.worker("node-a", pool="edge")
    stack.worker("node-b", pool="gpu")
    key = await stack.create_key()
    settings: dict[str, Any] = {
        "limits": routes(stack.tmp, {"edge": 1}, {"gpu": 1}),
        "dispatch": {"accept_timeout_s": 0.5},
    }
    async with stack.gateway(**settings) as gw:
        await gw.wait_for_model("llama3.2", nodes=2)
        assert (await post(gw, key)).json()["node_id"] == "node-a"
        doomed.send(signal.SIGKILL)
        doomed.wait()
        answers = [await post(gw, key) for _ in range(3)]
    assert [a.status_code for a in answers] == [200] * 3
    assert [a.json()["node_id"] for a in answers] == ["node-b"] * 3


async def test_a_failing_node_opens_its_breaker_and_is_probed_once_per_open_period(
    stack: Stack, second_ollama: FakeOllama
) -> None:
    second_ollama.fail_status = 500
    stack.worker("bad", pool="gpu", backend_url=second_ollama.url)
    stack.worker("good", pool="edge")
    key = await stack.create_key()
    settings: dict[str, Any] = {
        "limits": routes(stack.tmp, {"gpu": 1}, {"edge": 1}),
        "routing": {"breaker_open_s": 1.0, "backoff_base_s": 0.01},
    }
    async with stack.gateway(**settings) as gw:
        await gw.wait_for_model("llama3.2", nodes=2)
        breakers = gw.services.router.breakers
        for _ in range(5):
            response = await post(gw, key)
            assert response.status_code == 200
            assert response.headers["x-route-attempts"] == "2"
        assert len(second_ollama.chats) == 5
        assert breakers.state("bad") == "open"
        metrics = (await gw.client.get("/metrics")).text
        assert 'api_router_routing_breaker_state{node="bad"} 1.0' in metrics
        skipped = await post(gw, key)
        assert skipped.headers["x-route-attempts"] == "1"  # no network call to `bad`
        assert len(second_ollama.chats) == 5
        await eventually(lambda: breakers.state("bad") == "half_open", what="half-open")
        answers = [await post(gw, key) for _ in range(3)]
        assert [a.headers["x-route-attempts"] for a in answers] == ["2", "1", "1"]
        assert len(second_ollama.chats) == 6  # exactly one probe, which failed
        assert breakers.state("bad") == "open"
        second_ollama.fail_status = None
        await eventually(lambda: breakers.state("bad") == "half_open", what="half-open")
        probe = await post(gw, key)
        assert probe.json()["node_id"] == "bad"
        assert breakers.state("bad") == "closed"


async def test_a_too_hot_node_leaves_and_comes_back_only_below_the_margin(stack: Stack) -> None:
    async with stack.gateway() as gw:

        def states() -> dict[str, str]:
            return dict(gw.services.health.snapshot.states)

        async def report(temp: float) -> None:
            stack.put_health(node_health("pi", temp_celsius=temp, models_loaded=["m"]))
            before = gw.services.health.snapshot
            await eventually(lambda: gw.services.health.snapshot is not before, what="refresh")
            await eventually(lambda: "pi" in states(), what="the node")
            await asyncio.sleep(0.25)  # two more refreshes, so the state has settled

        await report(70.0)
        assert states()["pi"] == "healthy"
        await report(76.0)
        assert states()["pi"] == "too_hot"
        await report(72.0)  # below 75 but not below 75 - 5
        assert states()["pi"] == "too_hot"
        await report(69.5)
        assert states()["pi"] == "healthy"
        await report(74.0)  # under the threshold: a healthy node stays in
        assert states()["pi"] == "healthy"


async def test_a_stream_fails_over_before_acceptance_and_keeps_its_session_node(
    stack: Stack,
) -> None:
    ghost_node(stack, "ghost", pool="gpu")
    stack.worker("node-a", pool="edge")
    key = await stack.create_key()
    limits = routes(stack.tmp, {"gpu": 1}, {"edge": 1})
    async with stack.gateway(limits=limits, dispatch={"accept_timeout_s": 0.3}) as gw:
        await gw.wait_for_model("llama3.2", nodes=2)
        headers = {"X-API-Key": key, "X-Session-Id": "chat-42"}
        response = await gw.client.post("/v1/inference", json=chat(stream=True), headers=headers)
        assert response.status_code == 200, response.text
        events, _ = parse_sse(response.text)
        assert [e.event for e in events][-1] == "done"
        assert sum(1 for e in events if e.event == "done") == 1  # one completion
        assert response.headers["x-route-node"] == "node-a"
        assert response.headers["x-route-attempts"] == "2"
        # The session's node (by rendezvous over resident nodes) is the ghost, first tier.
        plan = gw.services.router.plan("llama3.2", "chat-42")
        assert plan.reason == "affinity"
        assert plan.candidates[0].node.node_id == "ghost"
