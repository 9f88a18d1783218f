"""Real stream messages, read back from Redis, against stream.job and stream.event."""

from __future__ import annotations

import json
import time
from typing import Any

from jsonschema import Draft202012Validator

from api_router.contracts import load_contract
from api_router.dispatch.protocol import KEEPALIVE_S
from api_router.keyspace import WORKER_GROUP
from tests.support.fake_ollama import FakeOllama
from tests.support.servers import wait_until
from tests.support.stack import Stack, chat, node_health

JOB = load_contract("stream.job")
EVENT = load_contract("stream.event")
EVENT_DATA = {
    "accepted": "AcceptedData",
    "chunk": "ChunkData",
    "done": "Completion",
    "error": "ErrorData",
}


def decoded(fields: dict[bytes, bytes]) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in fields.items()}


def check_job(fields: dict[str, str]) -> None:
    Draft202012Validator(JOB).validate(fields)
    kind = "EmbedPayload" if fields.get("op") == "embed" else "JobPayload"
    payload = {"$defs": JOB["$defs"], **JOB["$defs"][kind]}
    Draft202012Validator(payload).validate(json.loads(fields["payload"]))


def check_event(fields: dict[str, str], done: str = "Completion") -> None:
    """``done``: the data of a done event (``Embeddings`` for an embeddings job)."""
    Draft202012Validator(EVENT).validate(fields)
    name = done if fields["type"] == "done" else EVENT_DATA[fields["type"]]
    data_schema = {"$defs": EVENT["$defs"], **EVENT["$defs"][name]}
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
    assert job["v"] == "1"  # the ghost's entry names no protocol: a worker of before v2


async def test_a_job_is_written_in_the_version_its_worker_reads(stack: Stack) -> None:
    """Plain chats go to every node, in v1 to an older worker and in v2 to a newer one;
    tools only to the newer one, and to no node when only older ones serve the model."""
    for node, extra in (("old", {}), ("new", {"backend": "ollama", "protocol": 2})):
        stack.put_health(node_health(node, models_loaded=["llama3.2", "m"], **extra))
        with stack.redis.client() as client:
            client.xgroup_create(stack.keys.job_stream(node), WORKER_GROUP, id="0", mkstream=True)
    stack.put_health(node_health("old-only", models_loaded=["legacy"]))
    key = await stack.create_key()
    tool = {"type": "function", "function": {"name": "f"}}
    async with stack.gateway(dispatch={"accept_timeout_s": 0.05}) as gw:
        await gw.wait_for_model("llama3.2", nodes=2)
        # No worker accepts it in time: the job is tried on both ghosts.
        await gw.client.post("/v1/inference", json=chat(), headers={"X-API-Key": key})
        await gw.client.post(
            "/v1/inference", json=chat(options={"tools": [tool]}), headers={"X-API-Key": key}
        )
        refused = await gw.client.post(
            "/v1/inference",
            json=chat("legacy", options={"tools": [tool]}),
            headers={"X-API-Key": key},
        )
    with stack.redis.client() as client:
        old = [decoded(f) for _, f in client.xrange(stack.keys.job_stream("old"))]
        new = [decoded(f) for _, f in client.xrange(stack.keys.job_stream("new"))]
    for job in old + new:
        check_job(job)
    assert [job["v"] for job in old] == ["1"]
    assert [job["v"] for job in new] == ["2", "2"]
    assert not any("tools" in job["payload"] for job in old)
    assert sum("tools" in job["payload"] for job in new) == 1
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert error["code"] == "unsupported_parameter"
    assert error["message"] == (
        "tools is not supported by the nodes serving model 'legacy' "
        "(workers older than protocol v2)"
    )


def job_fields(
    attempt: int = 1,
    stream: bool = False,
    deadline_s: float = 30.0,
    payload: dict[str, Any] | None = None,
    **v2: str,
) -> dict[str, str]:
    """A job as a gateway writes it, by hand (``submit`` adds its ``reply_to``); with
    ``v2`` fields (``op``) it is a version 2 job."""
    return {
        "v": "2" if v2 or payload else "1",
        "id": f"req_{attempt:032x}",
        "attempt": str(attempt),
        "deadline_ms": str(int((time.time() + deadline_s) * 1000)),
        "model": "llama3.2",
        "stream": "1" if stream else "0",
        "tenant": "acme",
        "traceparent": "",
        "payload": json.dumps(payload or {"messages": [{"role": "user", "content": "a b c"}]}),
        **v2,
    }


def submit(stack: Stack, *jobs: dict[str, str]) -> str:
    """Put ``jobs`` on node-a's stream; their reply stream's name."""
    reply_to = f"{stack.prefix}:reply:{{contract}}"
    with stack.redis.client() as client:
        client.xadd(reply_to, {"type": "open"})
        for job in jobs:
            client.xadd(stack.keys.job_stream("node-a"), {**job, "reply_to": reply_to})
    return reply_to


def answered(stack: Stack, reply_to: str) -> list[dict[str, str]]:
    with stack.redis.client() as client:
        entries = client.xrange(reply_to)
    return [decoded(f) for _, f in entries if f.get(b"type") != b"open"]


def test_worker_events_follow_stream_event(stack: Stack, fake_ollama: FakeOllama) -> None:
    stack.worker("node-a")
    # A done, then an expired.
    reply_to = submit(stack, job_fields(1), job_fields(2, deadline_s=-1.0))
    wait_until(lambda: len(answered(stack, reply_to)) == 3, what="accepted, done and error")
    events = answered(stack, reply_to)
    for event in events:
        check_event(event)
    # Jobs run concurrently: check each job's own sequence.
    first = [e for e in events if e["attempt"] == "1"]
    second = [e for e in events if e["attempt"] == "2"]
    assert [(e["type"], e["seq"]) for e in first] == [("accepted", "0"), ("done", "1")]
    assert json.loads(first[0]["data"])["keepalive_s"] == KEEPALIVE_S
    assert json.loads(first[1]["data"])["message"]["content"].startswith("fake ollama says")
    assert [e["type"] for e in second] == ["error"]
    assert json.loads(second[0]["data"])["reason"] == "expired"


def test_a_slow_whole_answer_is_kept_alive_by_empty_chunks(
    stack: Stack, fake_ollama: FakeOllama
) -> None:
    fake_ollama.delay_s = KEEPALIVE_S * 1.25  # one keepalive falls due before the answer
    stack.worker("node-a")
    reply_to = submit(stack, job_fields())
    wait_until(lambda: len(answered(stack, reply_to)) == 3, 10, "accepted, keepalive, done")
    events = answered(stack, reply_to)
    for event in events:
        check_event(event)
    assert [(e["type"], e["seq"]) for e in events] == [
        ("accepted", "0"),
        ("chunk", "1"),
        ("done", "2"),
    ]
    assert json.loads(events[1]["data"]) == {"delta": "", "tokens": 0}


def test_the_events_of_a_streamed_job_follow_stream_event(
    stack: Stack, fake_ollama: FakeOllama
) -> None:
    fake_ollama.chunk_delay_s = 0.01
    stack.worker("node-a")
    reply_to = submit(stack, job_fields(stream=True))
    wait_until(lambda: any(e["type"] == "done" for e in answered(stack, reply_to)), what="the done")
    events = answered(stack, reply_to)
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


def test_version_2_jobs_and_their_events_follow_the_contracts(
    stack: Stack, fake_ollama: FakeOllama
) -> None:
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    tools = {"messages": [{"role": "user", "content": "go"}], "options": {"tools": [tool]}}
    jobs = [
        job_fields(1, stream=True, payload=tools),
        job_fields(2, payload={"input": ["a b", "c"], "dimensions": 4}, op="embed"),
    ]
    for job in jobs:
        check_job({**job, "reply_to": "r"})
    stack.worker("node-a")
    reply_to = submit(stack, *jobs)
    wait_until(
        lambda: sum(e["type"] == "done" for e in answered(stack, reply_to)) == 2, what="both"
    )
    events = answered(stack, reply_to)
    streamed = [e for e in events if e["attempt"] == "1"]
    embedded = [e for e in events if e["attempt"] == "2"]
    for event in streamed:
        check_event(event)
    for event in embedded:
        check_event(event, done="Embeddings")
    assert [e["type"] for e in streamed] == ["accepted", "chunk", "done"]
    (piece,) = json.loads(streamed[1]["data"])["tool_calls"]
    assert (piece["index"], piece["function"]["name"]) == (0, "f")
    assert json.loads(streamed[2]["data"])["finish_reason"] == "tool_calls"
    assert [e["type"] for e in embedded] == ["accepted", "done"]
    assert len(json.loads(embedded[1]["data"])["vectors"]) == 2
