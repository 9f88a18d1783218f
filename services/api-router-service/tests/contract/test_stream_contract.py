"""Real stream messages, read back from Redis, against stream.job and stream.event."""

from __future__ import annotations

import json
import time
from typing import Any

from jsonschema import Draft202012Validator

from api_router.contracts import load_contract
from api_router.keyspace import WORKER_GROUP
from tests.support.fake_ollama import FakeOllama
from tests.support.servers import wait_until
from tests.support.stack import Stack, chat, node_health

JOB = load_contract("stream.job")
EVENT = load_contract("stream.event")
EVENT_DATA = {
    "accepted": "AcceptedData",
    "chunk": "ChunkData",
    "done": "DoneData",
    "error": "ErrorData",
}


def decoded(fields: dict[bytes, bytes]) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in fields.items()}


def check_job(fields: dict[str, str]) -> None:
    Draft202012Validator(JOB).validate(fields)
    payload = {"$defs": JOB["$defs"], **JOB["$defs"]["JobPayload"]}
    Draft202012Validator(payload).validate(json.loads(fields["payload"]))


def check_event(fields: dict[str, str]) -> None:
    Draft202012Validator(EVENT).validate(fields)
    data_schema = EVENT["$defs"][EVENT_DATA[fields["type"]]]
    Draft202012Validator(data_schema).validate(json.loads(fields["data"]))


async def test_a_job_the_gateway_writes_follows_stream_job(stack: Stack) -> None:
    # A node with no worker: the job stays on its stream for us to read.
    stack.put_health(node_health("ghost", models_loaded=["llama3.2"]))
    with stack.redis.client() as client:
        client.xgroup_create(stack.keys.job_stream("ghost"), WORKER_GROUP, id="0", mkstream=True)
    key = await stack.create_key()
    async with stack.gateway(dispatch={"accept_timeout_s": 0.2}) as gw:
        await gw.wait_for_model("llama3.2")
        body = chat(options={"max_tokens": 5, "stop": ["\n"], "temperature": 0.5})
        await gw.client.post("/v1/inference", json=body, headers={"X-API-Key": key})
    with stack.redis.client() as client:
        ((_, fields),) = client.xrange(stack.keys.job_stream("ghost"))
    job = decoded(fields)
    check_job(job)
    assert json.loads(job["payload"]) == {
        "messages": body["messages"],
        "options": {"max_tokens": 5, "stop": ["\n"], "temperature": 0.5},
    }
    assert job["tenant"] == "acme" and job["stream"] == "0" and job["attempt"] == "1"
    assert int(job["deadline_ms"]) > time.time() * 1000


def test_worker_events_follow_stream_event(stack: Stack, fake_ollama: FakeOllama) -> None:
    stack.worker("node-a")
    reply_to = f"{stack.prefix}:reply:{{contract}}"
    with stack.redis.client() as client:
        client.xadd(reply_to, {"type": "open"})
        for attempt, deadline_offset in ((1, 30.0), (2, -1.0)):  # a done, then an expired
            client.xadd(
                stack.keys.job_stream("node-a"),
                {
                    "v": "1",
                    "id": f"req_{attempt:032x}",
                    "attempt": str(attempt),
                    "reply_to": reply_to,
                    "deadline_ms": str(int((time.time() + deadline_offset) * 1000)),
                    "model": "llama3.2",
                    "stream": "0",
                    "tenant": "acme",
                    "traceparent": "",
                    "payload": json.dumps({"messages": [{"role": "user", "content": "hi"}]}),
                },
            )

    def answered() -> list[dict[str, Any]]:
        with stack.redis.client() as client:
            entries = client.xrange(reply_to)
        return [decoded(f) for _, f in entries if f.get(b"type") != b"open"]

    wait_until(lambda: len(answered()) == 3, what="accepted, done and error")
    events = answered()
    for event in events:
        check_event(event)
    # Jobs run concurrently: check each job's own sequence.
    first = [e for e in events if e["attempt"] == "1"]
    second = [e for e in events if e["attempt"] == "2"]
    assert [(e["type"], e["seq"]) for e in first] == [("accepted", "0"), ("done", "1")]
    assert json.loads(first[1]["data"])["message"]["content"].startswith("fake ollama says")
    assert [e["type"] for e in second] == ["error"]
    assert json.loads(second[0]["data"])["reason"] == "expired"


def test_the_events_of_a_streamed_job_follow_stream_event(
    stack: Stack, fake_ollama: FakeOllama
) -> None:
    fake_ollama.chunk_delay_s = 0.01
    stack.worker("node-a")
    reply_to = f"{stack.prefix}:reply:{{contract}}"
    with stack.redis.client() as client:
        client.xadd(reply_to, {"type": "open"})
        client.xadd(
            stack.keys.job_stream("node-a"),
            {
                "v": "1",
                "id": "req_" + "ef" * 16,
                "attempt": "1",
                "reply_to": reply_to,
                "deadline_ms": str(int((time.time() + 30) * 1000)),
                "model": "llama3.2",
                "stream": "1",
                "tenant": "acme",
                "traceparent": "",
                "payload": json.dumps({"messages": [{"role": "user", "content": "a b c"}]}),
            },
        )

    def answered() -> list[dict[str, str]]:
        with stack.redis.client() as client:
            entries = client.xrange(reply_to)
        return [decoded(f) for _, f in entries if f.get(b"type") != b"open"]

    wait_until(lambda: any(e["type"] == "done" for e in answered()), what="the done event")
    events = answered()
    for event in events:
        check_event(event)
    kinds = [e["type"] for e in events]
    assert kinds[0] == "accepted" and kinds[-1] == "done"
    assert set(kinds[1:-1]) == {"chunk"} and len(kinds) > 3
    assert [int(e["seq"]) for e in events] == list(range(len(events)))
    chunks = [json.loads(e["data"]) for e in events[1:-1]]
    text = "".join(c["delta"] for c in chunks)
    assert text == json.loads(events[-1]["data"])["message"]["content"]
    assert sum(c["tokens"] for c in chunks) == len(text.split())
