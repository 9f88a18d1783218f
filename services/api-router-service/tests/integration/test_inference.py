"""/v1/inference through real Redis, real worker processes and the fake Ollama."""

from __future__ import annotations

import pytest

from tests.support.fake_ollama import FakeOllama, fake_reply
from tests.support.stack import Stack, chat, node_health


async def test_completion_from_the_fake_ollama_with_usage_and_timings(
    stack: Stack, fake_ollama: FakeOllama
) -> None:
    stack.worker("node-a")
    key = await stack.create_key("acme")
    async with stack.gateway() as gw:
        await gw.wait_for_model("llama3.2")
        response = await gw.client.post(
            "/v1/inference",
            json=chat("llama3.2", "tell me a story", options={"max_tokens": 32, "seed": 7}),
            headers={"Authorization": f"Bearer {key}"},
        )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "inference"
    assert body["id"] == response.headers["x-request-id"]
    assert body["id"].startswith("req_")
    assert body["model"] == "llama3.2"
    assert body["node_id"] == "node-a"
    expected = fake_reply([{"role": "user", "content": "tell me a story"}])
    assert body["message"] == {"role": "assistant", "content": expected}
    assert body["finish_reason"] == "stop"
    assert body["usage"] == {
        "prompt_tokens": 4,
        "completion_tokens": len(expected.split()),
        "total_tokens": 4 + len(expected.split()),
    }
    timings = body["timings"]
    assert all(timings[k] >= 0 for k in ("gateway_ms", "queue_ms", "inference_ms"))
    parts = timings["gateway_ms"] + timings["queue_ms"] + timings["inference_ms"]
    assert parts == pytest.approx(timings["total_ms"], abs=0.01)
    assert "gateway;dur=" in response.headers["server-timing"]
    assert f"total;dur={timings['total_ms']}" in response.headers["server-timing"]
    # The worker passed the options on in Ollama's names.
    assert fake_ollama.chats[-1]["options"] == {"num_predict": 32, "seed": 7}
    assert fake_ollama.chats[-1]["stream"] is False


async def test_x_api_key_header_authenticates(stack: Stack) -> None:
    stack.worker("node-a")
    key = await stack.create_key()
    async with stack.gateway() as gw:
        await gw.wait_for_model("llama3.2")
        response = await gw.client.post("/v1/inference", json=chat(), headers={"X-API-Key": key})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["model"], body["node_id"]) == ("llama3.2", "node-a")
    expected = fake_reply([{"role": "user", "content": "hello there"}])
    assert body["message"] == {"role": "assistant", "content": expected}


async def test_the_node_with_the_model_loaded_is_preferred(stack: Stack) -> None:
    warm = FakeOllama(available=["llama3.2:latest"], loaded=["llama3.2:latest"]).start()
    cold = FakeOllama(available=["llama3.2:latest"], loaded=[]).start()
    try:
        # node-a sorts first by name, so only residency can make node-b win every time.
        stack.worker("node-a", backend_url=cold.url)
        stack.worker("node-b", backend_url=warm.url)
        key = await stack.create_key()
        async with stack.gateway() as gw:
            await gw.wait_for_model("llama3.2", nodes=2)
            nodes = set()
            for _ in range(10):
                response = await gw.client.post(
                    "/v1/inference", json=chat(), headers={"X-API-Key": key}
                )
                assert response.status_code == 200, response.text
                nodes.add(response.json()["node_id"])
        assert nodes == {"node-b"}
        assert len(warm.chats) == 10 and not cold.chats
    finally:
        warm.stop()
        cold.stop()


@pytest.mark.parametrize(
    "bad_node",
    [
        node_health("node-0", last_seen=0.0),  # stale
        node_health("node-0", temp_celsius=80.0),  # too hot
        node_health("node-0", ram_percent=95.0),  # memory pressure
        node_health("node-0", available=False),
    ],
    ids=["stale", "too-hot", "memory-pressure", "unavailable"],
)
async def test_an_unhealthy_node_is_never_chosen(stack: Stack, bad_node: object) -> None:
    # The unhealthy node has the model loaded and sorts first: only health keeps it out.
    stack.put_health(
        node_health(
            "node-0",
            models_loaded=["llama3.2:latest"],
            models_available=["llama3.2:latest"],
            **{
                k: getattr(bad_node, k)
                for k in ("last_seen", "temp_celsius", "ram_percent", "available")
            },
        )
    )
    stack.worker("node-a")
    key = await stack.create_key()
    async with stack.gateway() as gw:
        await gw.wait_for_model("llama3.2")
        for _ in range(5):
            response = await gw.client.post(
                "/v1/inference", json=chat(), headers={"X-API-Key": key}
            )
            assert response.status_code == 200, response.text
            assert response.json()["node_id"] == "node-a"
