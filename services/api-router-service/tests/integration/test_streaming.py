"""Streamed answers end to end: real Redis, real worker processes, the fake Ollama."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from collections.abc import MutableMapping
from typing import Any

import httpx
import pytest

from api_router.api.request_context import RequestContext, context_of
from api_router.keyspace import WORKER_GROUP
from tests.support.fake_ollama import FakeOllama, fake_reply
from tests.support.servers import eventually
from tests.support.sse import ServerEvent, parse_sse
from tests.support.stack import Gateway, Stack, chat
from tests.support.usage_topic import read_usage


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
    fake_ollama.chunk_text = "{i} "  # numbered, so order and completeness both show
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
    assert text == "".join(f"{i} " for i in range(300))
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


async def test_a_finished_stream_leaves_its_usage_on_the_request_context(
    stack: Stack, fake_ollama: FakeOllama
) -> None:
    fake_ollama.stream_chunks = 20
    stack.worker("node-a")
    key = await stack.create_key()
    async with stack.gateway() as gw:
        await gw.wait_for_model("llama3.2")
        client = AsgiClient(gw, key, chat("llama3.2", "a b c d"))
        await client.run()
    context = client.context()
    assert (context.usage.status, context.usage.node_id, context.error_code) == (
        "ok",
        "node-a",
        None,
    )
    assert (context.usage.prompt_tokens, context.usage.completion_tokens) == (4, 20)
    done = parse_sse(client.text())[0][-1].json()
    assert done["timings"]["ttft_ms"] == context.usage.ttft_ms


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


async def test_a_long_prompt_gets_heartbeats_and_is_not_taken_for_a_dead_worker(
    stack: Stack, fake_ollama: FakeOllama
) -> None:
    # The backend is silent for longer than the idle timeout: the worker's keepalives
    # must keep the stream alive, and the client gets comment heartbeats meanwhile.
    fake_ollama.first_chunk_delay_s = 4.5
    stack.worker("node-a")
    key = await stack.create_key()
    async with stack.gateway(stream={"idle_timeout_s": 3.0, "heartbeat_s": 0.5}) as gw:
        await gw.wait_for_model("llama3.2")
        response = await gw.client.post(
            "/v1/inference", json=chat(stream=True), headers={"X-API-Key": key}
        )
    events, comments = parse_sse(response.text)
    assert [e.event for e in events][-1] == "done", response.text
    assert comments >= 4
    assert response.text.index(": keep-alive") < response.text.index("event: chunk")


class AsgiClient:
    """Drives the app as an ASGI server would, so a test can play a client that leaves
    mid-stream or stops reading (httpx's ASGI transport can do neither)."""

    def __init__(self, gw: Gateway, key: str, body: dict[str, Any]) -> None:
        content = json.dumps({**body, "stream": True}).encode()
        self.scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/v1/inference",
            "raw_path": b"/v1/inference",
            "root_path": "",
            "query_string": b"",
            "headers": [
                (b"content-type", b"application/json"),
                (b"x-api-key", key.encode()),
                (b"content-length", str(len(content)).encode()),
            ],
            "client": ("127.0.0.1", 50000),
            "server": ("gateway", 80),
        }
        self._gw = gw
        self._content = content
        self.bodies: list[bytes] = []
        self.leave = asyncio.Event()  # set: the client disconnects
        self.stop_reading_after: int | None = None  # writes beyond this block forever

    async def run(self) -> None:
        await self._gw.app(self.scope, self._receive, self._send)

    def text(self) -> str:
        return b"".join(self.bodies).decode()

    def context(self) -> RequestContext:
        """What the request left for usage and audit records (the app kept our scope)."""
        return context_of(self.scope)

    async def _receive(self) -> dict[str, Any]:
        if self._content:
            content, self._content = self._content, b""
            return {"type": "http.request", "body": content, "more_body": False}
        await self.leave.wait()
        return {"type": "http.disconnect"}

    async def _send(self, message: MutableMapping[str, Any]) -> None:
        if message["type"] != "http.response.body":
            return
        if self.stop_reading_after is not None and len(self.bodies) >= self.stop_reading_after:
            await asyncio.Event().wait()  # a full socket: this write never completes
        self.bodies.append(message["body"])


async def test_a_client_that_leaves_cancels_the_backend_call(
    stack: Stack, fake_ollama: FakeOllama
) -> None:
    fake_ollama.stream_chunks = 1000
    fake_ollama.chunk_delay_s = 0.02  # 20 s of answer, unless cancelled
    worker = stack.worker("node-a")
    key = await stack.create_key()
    async with stack.gateway() as gw:
        await gw.wait_for_model("llama3.2")
        client = AsgiClient(gw, key, chat())
        running = asyncio.create_task(client.run())
        await eventually(lambda: client.text().count("event: chunk") >= 3, what="3 chunks")
        client.leave.set()
        await running  # the gateway ends the request at once
        await eventually(lambda: fake_ollama.disconnects == 1, what="the backend call closed")
    assert fake_ollama.chunks_sent < 1000
    assert "event: done" not in client.text()
    [record] = await read_usage(stack.broker.bootstrap, stack.usage_topic, 1)
    assert (record["status"], record["streamed"], record["http_status"]) == ("cancelled", True, 200)
    assert record["completion_tokens"] >= 3 and record["timings"]["ttft_ms"] > 0
    # What the usage record will say: cancelled, with the tokens produced so far.
    context = client.context()
    assert (context.usage.streamed, context.usage.status, context.usage.node_id) == (
        True,
        "cancelled",
        "node-a",
    )
    assert context.usage.completion_tokens >= 3
    assert context.usage.ttft_ms is not None and context.usage.ttft_ms > 0
    await eventually(lambda: "job cancelled by the gateway" in worker.log(), what="worker log")
    with stack.redis.client() as client_:  # the cancelled job was acknowledged, not left over
        await eventually(
            lambda: client_.xpending(stack.keys.job_stream("node-a"), WORKER_GROUP)["pending"] == 0,
            what="the job acknowledged",
        )


async def test_a_client_that_leaves_a_real_server_cancels_the_backend_call(
    stack: Stack, fake_ollama: FakeOllama
) -> None:
    fake_ollama.stream_chunks = 1000
    fake_ollama.chunk_delay_s = 0.02
    stack.worker("node-a")
    gateway = stack.gateway_process()
    key = await stack.create_key()
    received = 0
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        body, headers = chat(stream=True), {"X-API-Key": key}
        async with client.stream("POST", "/v1/inference", json=body, headers=headers) as response:
            async for line in response.aiter_lines():
                received += line.startswith("event: chunk")
                if received == 3:
                    break  # leaving the block closes the connection
    await eventually(lambda: fake_ollama.disconnects == 1, what="the backend call closed")
    assert fake_ollama.chunks_sent < 1000


async def test_a_worker_killed_mid_stream_ends_the_stream_with_an_error_event(
    stack: Stack, fake_ollama: FakeOllama
) -> None:
    fake_ollama.stream_chunks = 1000
    fake_ollama.chunk_delay_s = 0.02
    worker = stack.worker("node-a")
    key = await stack.create_key()
    async with stack.gateway(stream={"idle_timeout_s": 3.0}) as gw:
        await gw.wait_for_model("llama3.2")
        request = asyncio.create_task(stream(gw, key, chat()))
        await eventually(lambda: fake_ollama.chunks_sent >= 5, what="the stream to start")
        worker.send(signal.SIGKILL)
        response, events = await request
    assert response.status_code == 200
    assert [e.event for e in events][-1] == "error"
    assert {e.event for e in events[:-1]} == {"chunk"}
    error = events[-1].json()["error"]
    assert error["code"] == "upstream_timeout"
    assert error["request_id"] == response.headers["x-request-id"]
    assert "node-a" in error["message"]


@pytest.mark.parametrize(
    "limits",
    [{"buffer_events": 8}, {"buffer_events": 10_000, "write_timeout_s": 0.5}],
    ids=["buffer-full", "write-blocked"],
)
async def test_a_client_that_stops_reading_is_cut_off_and_the_job_cancelled(
    stack: Stack,
    fake_ollama: FakeOllama,
    caplog: pytest.LogCaptureFixture,
    limits: dict[str, Any],
) -> None:
    fake_ollama.stream_chunks = 2000
    fake_ollama.chunk_delay_s = 0.005
    stack.worker("node-a")
    key = await stack.create_key()
    async with stack.gateway(stream=limits) as gw:
        await gw.wait_for_model("llama3.2")
        client = AsgiClient(gw, key, chat())
        client.stop_reading_after = 2  # the headers' first writes, then nothing
        with caplog.at_level(logging.WARNING, logger="api_router"):
            await client.run()  # returns: the gateway gave up on this client
        await eventually(lambda: fake_ollama.disconnects == 1, what="the backend call closed")
    assert fake_ollama.chunks_sent < 2000
    cut = [r for r in caplog.records if r.getMessage() == "slow reader cut off"]
    assert len(cut) == 1
    assert len(client.bodies) == 2
    context = client.context()
    assert (context.usage.status, context.error_code) == ("cancelled", "slow_reader")


@pytest.mark.parametrize("backend", ["ollama", "openai"])
async def test_each_http_backend_streams_with_usage(
    stack: Stack, fake_ollama: FakeOllama, backend: str
) -> None:
    fake_ollama.chunk_delay_s = 0.01
    stack.worker("node-a", "--backend", backend, "--backend-url", fake_ollama.url)
    key = await stack.create_key()
    async with stack.gateway() as gw:
        await gw.wait_for_model("llama3.2")
        _, events = await stream(gw, key, chat("llama3.2", "one two three"))
    expected = fake_reply([{"role": "user", "content": "one two three"}])
    deltas = [e.json()["delta"] for e in events if e.event == "chunk"]
    assert "".join(deltas) == expected and len(deltas) > 1
    assert events[-1].event == "done"
    usage = events[-1].json()["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (3, len(expected.split()))
    assert fake_ollama.chats[-1]["stream"] is True
    # Only the openai dialect asks for usage in the stream; Ollama always sends it.
    assert ("stream_options" in fake_ollama.chats[-1]) == (backend == "openai")


async def test_the_mock_backend_streams_at_its_token_rate(stack: Stack) -> None:
    stack.worker(
        "node-m", "--backend", "mock", "--models", "mock", "--mock-tokens-per-second", "200"
    )
    key = await stack.create_key()
    async with stack.gateway() as gw:
        await gw.wait_for_model("mock")
        _, events = await stream(gw, key, chat("mock", "a b c"))
    deltas = [e.json()["delta"] for e in events if e.event == "chunk"]
    assert "".join(deltas) == "mock reply from mock: a b c"
    assert len(deltas) > 1
    done = events[-1].json()
    assert done["usage"]["completion_tokens"] == 7
    assert done["metadata"]["mock"] == "true"


async def test_a_backend_failing_mid_stream_ends_it_with_an_error_event(
    stack: Stack, fake_ollama: FakeOllama
) -> None:
    fake_ollama.stream_chunks = 10
    fake_ollama.chunk_delay_s = 0.01
    fake_ollama.fail_after_chunks = 3
    stack.worker("node-a")
    key = await stack.create_key()
    async with stack.gateway() as gw:
        await gw.wait_for_model("llama3.2")
        _, events = await stream(gw, key, chat())
    assert [e.event for e in events][-1] == "error"
    assert "".join(e.json()["delta"] for e in events[:-1]) == "tok " * 3
    error = events[-1].json()["error"]
    assert error["code"] == "upstream_error"
    assert "backend_error" in error["message"] and "fake failure mid-stream" in error["message"]


async def test_a_worker_stopped_past_its_drain_grace_ends_the_stream_shutting_down(
    stack: Stack, fake_ollama: FakeOllama
) -> None:
    fake_ollama.stream_chunks = 1000
    fake_ollama.chunk_delay_s = 0.02
    worker = stack.worker("node-a", "--drain-grace-s", "0.3")
    key = await stack.create_key()
    async with stack.gateway() as gw:
        await gw.wait_for_model("llama3.2")
        request = asyncio.create_task(stream(gw, key, chat()))
        await eventually(lambda: fake_ollama.chunks_sent >= 5, what="the stream to start")
        worker.send(signal.SIGTERM)
        _, events = await request
    assert [e.event for e in events][-1] == "error"
    error = events[-1].json()["error"]
    assert error["code"] == "upstream_error" and "shutting_down" in error["message"]
    assert await asyncio.to_thread(worker.wait) == 0
    await eventually(lambda: fake_ollama.disconnects == 1, what="the backend call closed")
