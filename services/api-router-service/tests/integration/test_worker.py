"""Worker processes: crash recovery, graceful stop, deadlines, cancellation, trimming."""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Any

import msgspec

from api_router.chat import ChatMessage
from api_router.dispatch.protocol import Event, Job, JobPayload
from api_router.keyspace import WORKER_GROUP
from tests.support.fake_ollama import FakeOllama
from tests.support.servers import eventually, wait_until
from tests.support.stack import Gateway, Stack, chat


def send_job(stack: Stack, node: str, reply_to: str, *, deadline_ms: int | None = None) -> Job:
    """Put a job on a node's stream directly, as a gateway would, replying to ``reply_to``."""
    job = Job(
        id="req_" + "ab" * 16,
        attempt=1,
        reply_to=reply_to,
        deadline_ms=deadline_ms or int((time.time() + 30) * 1000),
        model="llama3.2",
        stream=False,
        tenant="acme",
        traceparent="",
        payload=JobPayload([ChatMessage("user", "hi")]),
    )
    with stack.redis.client() as client:
        client.xadd(reply_to, {"type": "open"})  # the gateway's reply stream exists
        client.xadd(stack.keys.job_stream(node), job.to_fields())
    return job


async def request_mid_job(gw: Gateway, key: str, fake_ollama: FakeOllama) -> asyncio.Task[Any]:
    """Send a request and return once the worker is inside its backend call."""
    await gw.wait_for_model("llama3.2")
    calls = len(fake_ollama.chats)
    request = asyncio.create_task(
        gw.client.post("/v1/inference", json=chat(), headers={"X-API-Key": key})
    )
    await eventually(lambda: len(fake_ollama.chats) > calls, what="the backend call")
    return request


def stream_emptied(stack: Stack, node: str) -> None:
    """Wait until every job on the node's stream is acknowledged (and trimmed)."""

    def empty() -> bool:
        with stack.redis.client() as client:
            return bool(client.xlen(stack.keys.job_stream(node)) == 0)

    wait_until(empty, what=f"{node}'s stream to empty")


def events(stack: Stack, reply_to: str) -> list[Event]:
    with stack.redis.client() as client:
        entries = client.xrange(reply_to)
    return [Event.from_fields(fields) for _, fields in entries if fields.get(b"type") != b"open"]


async def test_a_job_of_a_killed_worker_is_reclaimed_by_its_restart(
    stack: Stack, fake_ollama: FakeOllama
) -> None:
    fake_ollama.delay_s = 1.0
    first = stack.worker("node-a")
    key = await stack.create_key()
    async with stack.gateway() as gw:
        request = await request_mid_job(gw, key, fake_ollama)
        first.send(signal.SIGKILL)
        first.wait()
        fake_ollama.delay_s = 0.0
        stack.worker("node-a")  # same node, new process: reclaims once the lease lapses
        response = await request
    assert response.status_code == 200, response.text
    assert response.json()["node_id"] == "node-a"
    assert len(fake_ollama.chats) == 2  # the job ran again on the new process
    with stack.redis.client() as client:
        assert client.xpending(stack.keys.job_stream("node-a"), WORKER_GROUP)["pending"] == 0


async def test_sigterm_finishes_in_flight_work_then_leaves(
    stack: Stack, fake_ollama: FakeOllama
) -> None:
    fake_ollama.delay_s = 1.0
    worker = stack.worker("node-a")
    key = await stack.create_key()
    async with stack.gateway() as gw:
        request = await request_mid_job(gw, key, fake_ollama)
        worker.send(signal.SIGTERM)
        response = await request
        assert response.status_code == 200, response.text
        assert await asyncio.to_thread(worker.wait) == 0
    with stack.redis.client() as client:
        assert not client.hexists(stack.keys.health, "node-a")
        stream = stack.keys.job_stream("node-a")
        assert client.xinfo_consumers(stream, WORKER_GROUP) == []
        assert client.xpending(stream, WORKER_GROUP)["pending"] == 0


async def test_work_past_the_drain_grace_is_answered_shutting_down(
    stack: Stack, fake_ollama: FakeOllama
) -> None:
    fake_ollama.delay_s = 5.0
    worker = stack.worker("node-a", "--drain-grace-s", "0.3")
    key = await stack.create_key()
    async with stack.gateway() as gw:
        request = await request_mid_job(gw, key, fake_ollama)
        started = time.monotonic()
        worker.send(signal.SIGTERM)
        response = await request
        assert time.monotonic() - started < 3
    assert response.status_code == 502
    assert "shutting_down" in response.json()["error"]["message"]
    assert worker.wait() == 0
    with stack.redis.client() as client:  # answered, so acknowledged: not reclaimed later
        assert client.xpending(stack.keys.job_stream("node-a"), WORKER_GROUP)["pending"] == 0


def test_a_job_past_its_deadline_is_answered_expired_without_a_backend_call(
    stack: Stack, fake_ollama: FakeOllama
) -> None:
    stack.worker("node-a")
    reply_to = f"{stack.prefix}:reply:{{test}}"
    job = send_job(stack, "node-a", reply_to, deadline_ms=int((time.time() - 1) * 1000))
    wait_until(lambda: len(events(stack, reply_to)) == 1, what="the expired answer")
    (event,) = events(stack, reply_to)
    assert (event.id, event.type, event.node) == (job.id, "error", "node-a")
    assert event.error().reason == "expired"
    assert fake_ollama.chats == []


def test_a_cancelled_job_is_dropped_without_a_backend_call(
    stack: Stack, fake_ollama: FakeOllama
) -> None:
    reply_to = f"{stack.prefix}:reply:{{test}}"
    job = send_job(stack, "node-a", reply_to)
    with stack.redis.client() as client:
        client.set(stack.keys.cancel(reply_to, job.id, job.attempt), 1, ex=60)
    stack.worker("node-a")
    stream_emptied(stack, "node-a")
    assert events(stack, reply_to) == []
    assert fake_ollama.chats == []


def test_answers_to_a_gateway_that_is_gone_do_not_recreate_its_stream(stack: Stack) -> None:
    reply_to = f"{stack.prefix}:reply:{{gone}}"
    send_job(stack, "node-a", reply_to)
    with stack.redis.client() as client:
        client.delete(reply_to)
    stack.worker("node-a")
    stream_emptied(stack, "node-a")
    with stack.redis.client() as client:
        assert not client.exists(reply_to)


async def test_finished_jobs_are_trimmed_from_the_node_stream(stack: Stack) -> None:
    stack.worker("node-a", "--max-concurrency", "4")
    key = await stack.create_key()
    async with stack.gateway() as gw:
        await gw.wait_for_model("llama3.2")
        responses = await asyncio.gather(
            *(
                gw.client.post("/v1/inference", json=chat(), headers={"X-API-Key": key})
                for _ in range(20)
            )
        )
    assert [r.status_code for r in responses] == [200] * 20
    stream_emptied(stack, "node-a")  # every TRIM_EVERY acks, and when the work pauses
    with stack.redis.client() as client:
        stream = stack.keys.job_stream("node-a")
        info = msgspec.convert(client.xinfo_groups(stream)[0], dict[str, Any])
        assert (info["pending"], info["lag"]) == (0, 0)


def test_a_malformed_job_is_answered_malformed_job_and_acknowledged(
    stack: Stack, fake_ollama: FakeOllama
) -> None:
    stack.worker("node-a")
    reply_to = f"{stack.prefix}:reply:{{test}}"
    with stack.redis.client() as client:
        client.xadd(reply_to, {"type": "open"})
        client.xadd(
            stack.keys.job_stream("node-a"),
            {
                "v": "1",
                "id": "req_" + "cd" * 16,
                "attempt": "1",
                "reply_to": reply_to,
                "payload": "{not json",
            },
        )
    wait_until(lambda: len(events(stack, reply_to)) == 1, what="the malformed_job answer")
    (event,) = events(stack, reply_to)
    assert (event.id, event.type) == ("req_" + "cd" * 16, "error")
    assert event.error().reason == "malformed_job"
    stream_emptied(stack, "node-a")
    assert fake_ollama.chats == []
