"""`api-router serve` on SIGTERM with requests in flight on a node that never answers: a
short grace, then every request is answered by the gateway's own code, and the process
exits without a traceback."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import time
from typing import Any

import httpx

from api_router.keyspace import WORKER_GROUP
from tests.support.fake_ollama import FakeOllama
from tests.support.limits import routes
from tests.support.servers import eventually
from tests.support.sse import parse_sse
from tests.support.stack import Stack, chat
from tests.support.usage_topic import read_usage

GRACE_S = 3.0
NEVER_ANSWERS = ("--backend", "mock", "--models", "llama3.2", "--mock-latency-ms", "3600000")


async def ask(
    http: httpx.AsyncClient, body: dict[str, Any], began: asyncio.Event | None = None
) -> tuple[httpx.Response, str]:
    """The answer and its body; ``began`` is set once its status line has arrived."""
    async with http.stream("POST", "/v1/inference", json=body) as response:
        if began is not None:
            began.set()
        return response, (await response.aread()).decode()


async def test_sigterm_answers_every_request_in_flight_and_exits_within_the_grace(
    stack: Stack, fake_ollama: FakeOllama
) -> None:
    fake_ollama.delay_s = 1.0  # node-a answers within the grace
    never = stack.worker("node-n", *NEVER_ANSWERS, "--max-concurrency", "4", pool="never")
    stack.worker("node-a", pool="edge")  # the only node with qwen2.5:7b
    key = await stack.create_key()
    gateway = stack.gateway_process(
        limits=routes(stack.tmp, {"never": 1}, {"edge": 1}, max_concurrent=10),
        server={"graceful_shutdown_s": GRACE_S, "instance_id": "gw-stop"},
        dispatch={"request_timeout_s": 60.0},
    )
    bodies = {
        "finishes": chat("qwen2.5:7b"),
        "whole 1": chat(content="whole 1"),
        "whole 2": chat(content="whole 2"),
        "stream 1": chat(content="stream 1", stream=True),
        "stream 2": chat(content="stream 2", stream=True),
    }
    headers = {"X-API-Key": key}
    async with (
        httpx.AsyncClient(base_url=gateway.url, headers=headers, timeout=30) as http,
        httpx.AsyncClient(base_url=gateway.url, headers=headers, timeout=5) as late,
    ):
        asked = [asyncio.create_task(ask(http, body)) for body in bodies.values()]
        with stack.redis.client() as client:
            job_stream = stack.keys.job_stream("node-n")

            def held() -> bool:
                return bool(client.xpending(job_stream, WORKER_GROUP)["pending"] == 4)

            await eventually(held, what="node-n holding four jobs")
        await eventually(lambda: len(fake_ollama.chats) == 1, what="node-a's job running")
        gateway.send(signal.SIGTERM)
        # While it drains: not ready, and new requests are refused, with a retry hint.
        readiness = await asyncio.to_thread(_readiness_while_draining, gateway.url)
        refused = await late.post("/v1/inference", json=chat())
        answers = dict(zip(bodies, await asyncio.gather(*asked), strict=True))
    exit_status = await asyncio.to_thread(gateway.wait, GRACE_S + 5)

    assert exit_status in (0, -signal.SIGTERM)
    assert readiness[0] == 503 and readiness[1].startswith("shutting down")
    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "shutting_down"
    assert refused.headers["retry-after"] == "1"
    statuses = {name: response.status_code for name, (response, _) in answers.items()}
    assert statuses == {"finishes": 200, "whole 1": 503, "whole 2": 503} | {
        "stream 1": 200,
        "stream 2": 200,
    }
    # Answers begun during the drain close their connection (the streams began before).
    for name in ("finishes", "whole 1", "whole 2"):
        assert answers[name][0].headers["connection"] == "close", name
    for name in ("whole 1", "whole 2"):
        response, body = answers[name]
        assert json.loads(body)["error"]["code"] == "shutting_down"
        assert response.headers["retry-after"] == "1"
    for name in ("stream 1", "stream 2"):
        events, _ = parse_sse(answers[name][1])
        assert [e.event for e in events] == ["error"]
        assert events[0].json()["error"]["code"] == "shutting_down"

    # Each request in flight has its usage record (Kafka) and its audit record (Redis).
    ids = {response.headers["x-request-id"]: name for name, (response, _) in answers.items()}
    records = await read_usage(stack.broker.bootstrap, stack.usage_topic, len(ids))
    assert sorted(r["request_id"] for r in records) == sorted(ids)
    for record in records:
        name = ids[record["request_id"]]
        expected = ("ok", None) if name == "finishes" else ("cancelled", "shutting_down")
        assert (record["status"], record["error_code"]) == expected, name
    with stack.redis.client() as client:
        assert all(client.exists(stack.keys.audit_record(i)) for i in ids)
        # Their limits were settled (no lease left) and node-n's jobs cancelled.
        assert client.zcard(stack.keys.limit("acme", "tenant", "lease")) == 0
        reply_stream = stack.keys.reply_stream("gw-stop")
        cancelled = [i for i, name in ids.items() if name != "finishes"]
        assert all(client.exists(stack.keys.cancel(reply_stream, i, 1)) for i in cancelled)
    await eventually(
        lambda: never.log().count("job cancelled by the gateway") == 4,
        what="node-n dropping the cancelled jobs",
    )
    log = gateway.log()
    assert "Traceback" not in log
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert lines and not [line for line in lines if line["level"] == "ERROR"]


async def test_a_stalled_redis_does_not_hold_the_exit(own_redis_stack: Stack) -> None:
    stack = own_redis_stack
    stack.worker("node-n", *NEVER_ANSWERS, "--max-concurrency", "2")
    key = await stack.create_key()
    # The accept timeout outlasts the grace: a job whose `accepted` the pause holds back
    # is still waiting when the drain answers it.
    gateway = stack.gateway_process(
        server={"graceful_shutdown_s": GRACE_S},
        dispatch={"request_timeout_s": 60.0, "accept_timeout_s": 2 * GRACE_S},
    )
    stream_began = asyncio.Event()
    async with httpx.AsyncClient(
        base_url=gateway.url, headers={"X-API-Key": key}, timeout=30
    ) as http:
        asked = [
            asyncio.create_task(ask(http, chat(content="whole"))),
            asyncio.create_task(ask(http, chat(content="stream", stream=True), stream_began)),
        ]
        with stack.redis.client() as client:
            job_stream = stack.keys.job_stream("node-n")
            await eventually(
                lambda: client.xpending(job_stream, WORKER_GROUP)["pending"] == 2,
                what="node-n holding both jobs",
            )
        # The stream's 200 went out (its `accepted` came) before Redis stalls.
        await asyncio.wait_for(stream_began.wait(), timeout=10)
        stack.redis.pause()  # every Redis call of the shutdown now hangs until it times out
        gateway.send(signal.SIGTERM)
        answers = await asyncio.gather(*asked)
    exit_status = await asyncio.to_thread(gateway.wait, GRACE_S + 5)
    assert exit_status in (0, -signal.SIGTERM)
    assert [response.status_code for response, _ in answers] == [503, 200]
    assert json.loads(answers[0][1])["error"]["code"] == "shutting_down"
    assert parse_sse(answers[1][1])[0][-1].json()["error"]["code"] == "shutting_down"
    # Usage records need no Redis: both reached Kafka.
    records = await read_usage(stack.broker.bootstrap, stack.usage_topic, 2)
    ids = {response.headers["x-request-id"] for response, _ in answers}
    assert {r["request_id"] for r in records} == ids
    assert "Traceback" not in gateway.log()


def test_a_body_still_arriving_when_the_grace_ends_is_answered_503_not_cancelled(
    stack: Stack,
) -> None:
    gateway = stack.gateway_process(
        check="healthz", server={"graceful_shutdown_s": 1.0, "receive_timeout_s": 60.0}
    )
    head = (
        f"POST /v1/inference HTTP/1.1\r\nHost: x\r\nX-API-Key: {asyncio.run(stack.create_key())}"
        "\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=15) as conn:
        conn.sendall(head + b'{"model": "m",')  # the rest never comes
        time.sleep(0.5)  # time to be authenticated and to start reading the body
        gateway.send(signal.SIGTERM)
        readiness = _readiness_while_draining(gateway.url)
        answer = b""
        while chunk := conn.recv(65536):  # the gateway closes the connection after it
            answer += chunk
    assert gateway.wait(1.0 + 5) in (0, -signal.SIGTERM)
    assert readiness == (503, "shutting down, 1 request(s) finishing")
    assert answer.startswith(b"HTTP/1.1 503")
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]["code"] == "shutting_down"
    log = gateway.log()
    assert "request cut off by the shutdown" in log
    assert "Traceback" not in log


def _readiness_while_draining(url: str) -> tuple[int, str]:
    """Readiness's status and its ``serving`` detail once the drain has begun (the server
    looks for the signal every 0.1 s)."""
    for _ in range(250):
        response = httpx.get(f"{url}/v1/status/readyz")
        serving = response.json()["components"]["serving"]
        if serving["status"] == "failed":
            return response.status_code, str(serving["detail"])
        time.sleep(0.02)
    raise TimeoutError("readiness never failed")
