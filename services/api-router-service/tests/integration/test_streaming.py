"""Streamed answers end to end: real Redis, real worker processes, the fake Ollama."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

from tests.support.fake_ollama import FakeOllama, fake_reply
from tests.support.servers import eventually
from tests.support.sse import ServerEvent, parse_sse
from tests.support.stack import Gateway, Stack, chat


async def stream(gw: Gateway, key: str, body: dict[str, Any]) -> tuple[Any, list[ServerEvent]]:
    response = await gw.client.post(
        "/v1/inference", json={**body, "stream": True}, headers={"X-API-Key": key}
    )
    events, _ = parse_sse(response.text)
    return response, events


async def test_many_chunks_arrive_in_order_and_complete_with_usage_and_ttft(
    stack: Stack, fake_ollama: FakeOllama
) -> None:
    fake_ollama.stream_chunks = 300
    fake_ollama.chunk_text = "x"
    # Numbered pieces would be nicer, but the fake repeats one text: order is checked by
    # the gateway's seq check, completeness here by the count.
    stack.worker("node-a")
    key = await stack.create_key()
    async with stack.gateway() as gw:
        await gw.wait_for_model("llama3.2")
        response, events = await stream(gw, key, chat("llama3.2", "count to many"))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    kinds = [e.event for e in events]
    assert kinds[-1] == "done" and set(kinds[:-1]) == {"chunk"}, kinds
    text = "".join(e.json()["delta"] for e in events[:-1])
    assert text == "x" * 300
    done = events[-1].json()
    assert done["object"] == "inference.done"
    assert done["id"] == response.headers["x-request-id"]
    assert (done["model"], done["node_id"], done["finish_reason"]) == ("llama3.2", "node-a", "stop")
    assert done["usage"] == {"prompt_tokens": 3, "completion_tokens": 300, "total_tokens": 303}
    timings = done["timings"]
    assert 0 < timings["ttft_ms"] <= timings["total_ms"]
    parts = timings["gateway_ms"] + timings["queue_ms"] + timings["inference_ms"]
    assert abs(parts - timings["total_ms"]) < 0.01
    assert fake_ollama.chats[-1]["stream"] is True


async def test_the_reply_streams_word_by_word(stack: Stack, fake_ollama: FakeOllama) -> None:
    fake_ollama.chunk_delay_s = 0.01
    stack.worker("node-a")
    key = await stack.create_key()
    async with stack.gateway() as gw:
        await gw.wait_for_model("llama3.2")
        _, events = await stream(gw, key, chat("llama3.2", "one two three"))
    expected = fake_reply([{"role": "user", "content": "one two three"}])
    deltas = [e.json()["delta"] for e in events if e.event == "chunk"]
    assert "".join(deltas) == expected
    assert len(deltas) > 1  # the words came as they were produced, not in one piece
