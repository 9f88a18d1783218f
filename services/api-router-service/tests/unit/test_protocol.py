"""Stream protocol v1 and v2: jobs and events survive the trip through Redis field maps,
and a job is written in the version its worker reads."""

from __future__ import annotations

import dataclasses

import pytest

from api_router.chat import ChatMessage, ChatOptions, Completion, Usage
from api_router.chat_tools import (
    FunctionCall,
    FunctionCallDelta,
    FunctionDefinition,
    JsonObjectFormat,
    Tool,
    ToolCall,
    ToolCallDelta,
)
from api_router.dispatch.protocol import (
    ChunkData,
    EmbedPayload,
    ErrorData,
    Event,
    Job,
    JobPayload,
    ProtocolError,
    accepted,
    chunk,
    done,
    failed,
    job_failed,
)
from api_router.embeddings import Embeddings, pack, unpack

JOB = Job(
    id="req_" + "0" * 32,
    attempt=1,
    reply_to="api-router:reply:{gw}",
    deadline_ms=1_795_000_000_000,
    model="llama3.2",
    stream=False,
    tenant="acme",
    traceparent="00-" + "1" * 32 + "-" + "2" * 16 + "-01",
    payload=JobPayload([ChatMessage("user", "hi")], ChatOptions(max_tokens=5, stop=["\n"])),
)


def as_redis(fields: dict[str, str | bytes]) -> dict[bytes, bytes]:
    return {k.encode(): v if isinstance(v, bytes) else v.encode() for k, v in fields.items()}


def test_a_job_round_trips() -> None:
    assert Job.from_fields(as_redis(JOB.to_fields())) == JOB


def test_job_fields_are_the_protocol_v1_set() -> None:
    assert set(JOB.to_fields()) == {
        "v",
        "id",
        "attempt",
        "reply_to",
        "deadline_ms",
        "model",
        "stream",
        "tenant",
        "traceparent",
        "payload",
    }
    assert JOB.to_fields()["v"] == "1"


@pytest.mark.parametrize(
    "change",
    [
        {b"v": b"3"},
        {b"attempt": b"x"},
        {b"payload": b"{"},
        {b"payload": b'{"messages": 1}'},
        {b"v": b"2", b"op": b"transcribe"},
        # v1 has no tools: a worker must not answer as if it had read them
        {
            b"payload": b'{"messages": [{"role": "user", "content": "x"}], "options": '
            b'{"tools": [{"type": "function", "function": {"name": "f"}}]}}'
        },
        {b"payload": b'{"messages": [{"role": "tool", "content": "x", "tool_call_id": "c"}]}'},
    ],
)
def test_malformed_jobs_raise_protocol_error(change: dict[bytes, bytes]) -> None:
    fields = as_redis(JOB.to_fields()) | change
    with pytest.raises(ProtocolError):
        Job.from_fields(fields)


TOOLS_JOB = dataclasses.replace(
    JOB,
    payload=JobPayload(
        [
            ChatMessage("user", "weather?"),
            ChatMessage("assistant", "", tool_calls=[ToolCall("c1", FunctionCall("w", "{}"))]),
            ChatMessage("tool", "sunny", tool_call_id="c1"),
        ],
        ChatOptions(
            tools=[Tool("function", FunctionDefinition("w"))],
            tool_choice="required",
            response_format=JsonObjectFormat(),
        ),
    ),
    version=2,
)
EMBED_JOB = dataclasses.replace(JOB, payload=EmbedPayload(["a", "b"], 4), version=2)


@pytest.mark.parametrize("job", [TOOLS_JOB, EMBED_JOB])
def test_a_version_2_job_round_trips_in_version_2_only(job: Job) -> None:
    fields = job.to_fields(2)
    assert fields["v"] == "2"
    assert Job.from_fields(as_redis(fields)) == job
    assert fields.get("op") == ("embed" if job is EMBED_JOB else None)
    with pytest.raises(ValueError):
        job.to_fields(1)


def test_a_plain_job_is_written_in_the_version_its_worker_reads() -> None:
    assert Job.from_fields(as_redis(JOB.to_fields(2))) == dataclasses.replace(JOB, version=2)
    assert "op" not in JOB.to_fields(2)


def test_a_version_1_job_gets_only_version_1_error_reasons() -> None:
    refused = ErrorData("invalid_request", "context too long")
    assert job_failed(JOB, "n", 1, refused).error().reason == "backend_error"
    assert job_failed(TOOLS_JOB, "n", 1, refused).error().reason == "invalid_request"


def test_tool_call_pieces_and_embeddings_round_trip_as_event_data() -> None:
    piece = ToolCallDelta(0, "c1", "function", FunctionCallDelta("w", '{"city": '))
    event = chunk(TOOLS_JOB, "n", 1, ChunkData("", 1, [piece]))
    assert Event.from_fields(as_redis(event.to_fields())).chunk().tool_calls == [piece]
    assert b"tool_calls" not in chunk(JOB, "n", 1, ChunkData("text", 1)).data
    vectors = Embeddings([pack([0.5, -0.25]), pack([1.0, 0.0])], Usage(2, 0))
    answered = Event.from_fields(as_redis(done(EMBED_JOB, "n", 1, vectors).to_fields()))
    assert [unpack(v) for v in answered.embeddings().vectors] == [[0.5, -0.25], [1.0, 0.0]]


def test_a_job_missing_a_field_raises_protocol_error() -> None:
    fields = as_redis(JOB.to_fields())
    del fields[b"model"]
    with pytest.raises(ProtocolError):
        Job.from_fields(fields)


def test_events_round_trip_with_their_data() -> None:
    completion = Completion(ChatMessage("assistant", "hello"), "stop", Usage(3, 1), {"k": "v"})
    for event in (
        accepted(JOB, "node-a", "node-a-1"),
        done(JOB, "node-a", 1, completion),
        failed(JOB.id, 1, "node-a", 1, ErrorData("backend_timeout", "slow", retryable=True)),
    ):
        assert Event.from_fields(as_redis(event.to_fields())) == event
    assert done(JOB, "n", 1, completion).completion() == completion
    error = failed(JOB.id, 1, "n", 1, ErrorData("expired", "late")).error()
    assert (error.reason, error.retryable) == ("expired", False)


def test_unknown_event_types_and_bad_data_raise_protocol_error() -> None:
    fields = as_redis(accepted(JOB, "n", "c").to_fields())
    with pytest.raises(ProtocolError):
        Event.from_fields(fields | {b"type": b"bogus"})
    with pytest.raises(ProtocolError):
        Event.from_fields(fields | {b"type": b"done"}).completion()
