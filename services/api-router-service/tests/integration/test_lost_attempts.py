"""A worker that dies after accepting jobs, on real processes: the gateway takes its
attempts for lost (a silent worker, or a stale health entry) and hands each job to another
node, since nothing had reached the clients yet."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from typing import Any

import httpx
import pytest

from tests.support.fake_ollama import FakeOllama, fake_reply
from tests.support.limits import routes
from tests.support.servers import eventually
from tests.support.sse import parse_sse
from tests.support.stack import Stack, chat
from tests.support.usage_topic import read_usage

# How the dead node is noticed, as (dispatch.idle_timeout_s, health.fresh_s): its silence
# (no keepalive for the idle timeout), or its health entry going stale (with an idle
# timeout too long to matter).
DETECTORS = {"silent": (3.0, 15.0), "stale": (120.0, 1.0)}


async def ask(http: httpx.AsyncClient, content: str, streamed: bool) -> dict[str, Any]:
    """One request; what came back, as the client saw it."""
    body = chat(content=content, stream=streamed)
    async with http.stream("POST", "/v1/inference", json=body) as response:
        text = (await response.aread()).decode()
    answer: dict[str, Any] = {"status": response.status_code, "headers": response.headers}
    if not streamed:
        answer["node"], answer["text"] = response.json()["node_id"], response.json()["message"]
        answer["text"] = answer["text"]["content"]
        return answer
    events, _ = parse_sse(text)
    answer["events"] = [e.event for e in events]
    answer["text"] = "".join(e.json()["delta"] for e in events if e.event == "chunk")
    answer["node"] = events[-1].json().get("node_id")
    return answer


@pytest.mark.parametrize("detector", DETECTORS.values(), ids=DETECTORS.keys())
async def test_jobs_a_killed_worker_had_accepted_are_answered_by_another_node(
    stack: Stack,
    fake_ollama: FakeOllama,
    second_ollama: FakeOllama,
    detector: tuple[float, float],
) -> None:
    idle_timeout_s, fresh_s = detector
    second_ollama.delay_s = 60.0  # node-c's backend: the jobs it accepts never finish
    doomed = stack.worker(
        "node-c", "--max-concurrency", "4", pool="doomed", backend_url=second_ollama.url
    )
    stack.worker("node-a", pool="edge")
    key = await stack.create_key()
    gateway = stack.gateway_process(
        limits=routes(stack.tmp, {"doomed": 1}, {"edge": 1}),
        routing={"breaker_failures": 4, "breaker_open_s": 60.0},
        server={"instance_id": "gw-lost"},
        dispatch={"request_timeout_s": 30.0, "idle_timeout_s": idle_timeout_s},
        health={"fresh_s": fresh_s},
    )
    contents = {"whole 1": False, "whole 2": False, "stream 1": True, "stream 2": True}
    headers = {"X-API-Key": key}
    async with httpx.AsyncClient(base_url=gateway.url, headers=headers, timeout=60) as http:
        asked = [asyncio.create_task(ask(http, c, s)) for c, s in contents.items()]
        await eventually(lambda: len(second_ollama.chats) == 4, what="node-c's jobs running")
        doomed.send(signal.SIGKILL)
        answers = dict(zip(contents, await asyncio.gather(*asked), strict=True))
        metrics = (await http.get("/metrics")).text

    # Every affected request is answered 200 by node-a, inside its deadline: nothing had
    # reached the clients, streams included (their 200 was sent when node-c accepted).
    for content, answer in answers.items():
        assert answer["status"] == 200, (content, answer)
        assert (answer["node"], answer["text"]) == ("node-a", fake_reply(_said(content)))
    for content in ("stream 1", "stream 2"):
        assert answers[content]["events"][-1] == "done"
        assert "error" not in answers[content]["events"]
    # One execution at the backend for each answer returned.
    executions = Counter(c["messages"][-1]["content"] for c in fake_ollama.chats)
    assert executions == Counter(list(contents))
    # Exactly one usage record each, naming both attempts.
    ids = {answer["headers"]["x-request-id"] for answer in answers.values()}
    records = await read_usage(stack.broker.bootstrap, stack.usage_topic, 4)
    assert sorted(r["request_id"] for r in records) == sorted(ids)
    for record in records:
        assert (record["status"], record["node_id"]) == ("ok", "node-a")
        tried = [(t["node_id"], t["error"]) for t in record["routing"]["tried"]]
        assert tried == [("node-c", "upstream_timeout"), ("node-a", None)]
    # The lost attempts were cancelled (a node-c that came back would drop them), and the
    # dead node's breaker is open.
    with stack.redis.client() as client:
        reply_stream = stack.keys.reply_stream("gw-lost")
        assert all(client.exists(stack.keys.cancel(reply_stream, i, 1)) for i in ids)
    assert 'api_router_routing_breaker_state{node="node-c"} 1.0' in metrics


def _said(content: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": content}]
