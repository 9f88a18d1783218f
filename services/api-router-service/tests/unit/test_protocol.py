"""Stream protocol v1: jobs and events survive the trip through Redis field maps."""

from __future__ import annotations

import pytest

from api_router.chat import ChatMessage, ChatOptions, Completion, Usage
from api_router.dispatch.protocol import (
    ErrorData,
    Event,
    Job,
    JobPayload,
    ProtocolError,
    accepted,
    done,
    failed,
)

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
    [{b"v": b"2"}, {b"attempt": b"x"}, {b"payload": b"{"}, {b"payload": b'{"messages": 1}'}],
)
def test_malformed_jobs_raise_protocol_error(change: dict[bytes, bytes]) -> None:
    fields = as_redis(JOB.to_fields()) | change
    with pytest.raises(ProtocolError):
        Job.from_fields(fields)


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
