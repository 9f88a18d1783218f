"""Stream protocol v1 between gateway replicas and workers (see DESIGN.md).

A job is an entry on the node's stream ``…:req:{node}`` with the string fields ``v``, ``id``,
``attempt``, ``reply_to``, ``deadline_ms`` (epoch ms), ``model``, ``stream`` (0/1),
``tenant``, ``traceparent`` and ``payload`` (JSON: messages and options). A worker answers
with events on ``reply_to``: ``id``, ``attempt``, ``node``, ``type``, ``seq`` and ``data``
(JSON whose shape depends on ``type``). The JSON Schemas are ``contracts/stream.*.json``.

While a job runs the worker writes an event at least every ``KEEPALIVE_S`` (text, or an
empty ``chunk`` as a keepalive), for whole answers as for streams: an accepted job whose
worker falls silent is lost, and the gateway gives it to another node. The version stays
1: ``accepted`` announcing ``keepalive_s`` is an optional field that older gateways ignore,
and a gateway watches whole answers for silence only when the worker announced it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal, TypeVar

import msgspec

from api_router.chat import ChatMessage, ChatOptions, Completion

PROTOCOL_VERSION: Final = "1"

# While a job's backend produces nothing (a whole answer being made, a long prompt being
# read), its worker writes an empty `chunk` this often, so the gateway can tell a slow
# backend from a dead worker. The worker says so in `accepted` (``keepalive_s``).
KEEPALIVE_S: Final = 2.0

_T = TypeVar("_T")

EventType = Literal["accepted", "chunk", "done", "error"]
_EVENT_TYPES: Final = frozenset({"accepted", "chunk", "done", "error"})

# Reasons a worker gives in an `error` event.
ErrorReason = Literal[
    "expired",  # the job's deadline passed before the worker could start it
    "malformed_job",  # the job could not be decoded
    "model_not_found",  # the backend does not serve the model
    "backend_error",  # the backend failed or answered something unusable
    "backend_timeout",  # the backend did not answer before the deadline
    "backend_unavailable",  # the backend could not be reached
    "shutting_down",  # the worker stopped before it could finish
]


class ProtocolError(Exception):
    """A stream entry that does not follow protocol v1."""


class JobPayload(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    messages: list[ChatMessage]
    options: ChatOptions = msgspec.field(default_factory=ChatOptions)


class AcceptedData(msgspec.Struct, frozen=True):
    """``keepalive_s``: the worker writes an event at least this often while the job runs,
    whole or streamed. Workers that predate it leave it out: the gateway then waits for a
    whole answer until its deadline, as it did."""

    consumer: str
    keepalive_s: float | None = None


class ChunkData(msgspec.Struct, frozen=True):
    """Text the backend produced since the previous chunk. ``tokens`` counts the backend's
    stream pieces it holds (one piece is one token for Ollama and OpenAI-compatible
    servers); an empty delta with no tokens is a keepalive."""

    delta: str
    tokens: int = 0


class ErrorData(msgspec.Struct, frozen=True):
    reason: ErrorReason
    message: str
    retryable: bool = False


_payload_decoder = msgspec.json.Decoder(JobPayload)
_accepted_decoder = msgspec.json.Decoder(AcceptedData)
_chunk_decoder = msgspec.json.Decoder(ChunkData)
_done_decoder = msgspec.json.Decoder(Completion)
_error_decoder = msgspec.json.Decoder(ErrorData)
_encode = msgspec.json.encode


@dataclass(frozen=True, slots=True)
class Job:
    id: str
    attempt: int
    reply_to: str
    deadline_ms: int
    model: str
    stream: bool
    tenant: str
    traceparent: str
    payload: JobPayload

    def to_fields(self) -> dict[str, str | bytes]:
        return {
            "v": PROTOCOL_VERSION,
            "id": self.id,
            "attempt": str(self.attempt),
            "reply_to": self.reply_to,
            "deadline_ms": str(self.deadline_ms),
            "model": self.model,
            "stream": "1" if self.stream else "0",
            "tenant": self.tenant,
            "traceparent": self.traceparent,
            "payload": _encode(self.payload),
        }

    @classmethod
    def from_fields(cls, fields: dict[bytes, bytes]) -> Job:
        try:
            if fields[b"v"] != PROTOCOL_VERSION.encode():
                raise ProtocolError(f"unsupported protocol version {fields[b'v']!r}")
            return cls(
                id=fields[b"id"].decode(),
                attempt=int(fields[b"attempt"]),
                reply_to=fields[b"reply_to"].decode(),
                deadline_ms=int(fields[b"deadline_ms"]),
                model=fields[b"model"].decode(),
                stream=fields[b"stream"] == b"1",
                tenant=fields[b"tenant"].decode(),
                traceparent=fields[b"traceparent"].decode(),
                payload=_payload_decoder.decode(fields[b"payload"]),
            )
        except (KeyError, ValueError, msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise ProtocolError(f"malformed job: {exc!r}") from None


def reply_address(fields: dict[bytes, bytes]) -> tuple[str, int, str] | None:
    """``(id, attempt, reply_to)`` of a job too malformed to decode, when those are
    readable, so the worker can still answer it with ``error/malformed_job``."""
    try:
        return fields[b"id"].decode(), int(fields[b"attempt"]), fields[b"reply_to"].decode()
    except (KeyError, ValueError):
        return None


@dataclass(frozen=True, slots=True)
class Event:
    id: str
    attempt: int
    node: str
    type: EventType
    seq: int
    data: bytes  # JSON; decode with the accessor for its type

    def to_fields(self) -> dict[str, str | bytes]:
        return {
            "id": self.id,
            "attempt": str(self.attempt),
            "node": self.node,
            "type": self.type,
            "seq": str(self.seq),
            "data": self.data,
        }

    @classmethod
    def from_fields(cls, fields: dict[bytes, bytes]) -> Event:
        try:
            kind = fields[b"type"].decode()
            if kind not in _EVENT_TYPES:
                raise ProtocolError(f"unknown event type {kind!r}")
            return cls(
                id=fields[b"id"].decode(),
                attempt=int(fields[b"attempt"]),
                node=fields[b"node"].decode(),
                type=kind,  # type: ignore[arg-type]  # checked against _EVENT_TYPES above
                seq=int(fields[b"seq"]),
                data=fields[b"data"],
            )
        except (KeyError, ValueError) as exc:
            raise ProtocolError(f"malformed event: {exc!r}") from None

    def accepted(self) -> AcceptedData:
        return _decode(_accepted_decoder, self.data)

    def chunk(self) -> ChunkData:
        return _decode(_chunk_decoder, self.data)

    def completion(self) -> Completion:
        return _decode(_done_decoder, self.data)

    def error(self) -> ErrorData:
        return _decode(_error_decoder, self.data)


def accepted(job: Job, node: str, consumer: str) -> Event:
    data = AcceptedData(consumer, KEEPALIVE_S)
    return Event(job.id, job.attempt, node, "accepted", 0, _encode(data))


def keepalive(job: Job, node: str, seq: int) -> Event:
    """An empty chunk: the job is still running (whole or streamed)."""
    return chunk(job, node, seq, ChunkData(""))


def chunk(job: Job, node: str, seq: int, data: ChunkData) -> Event:
    return Event(job.id, job.attempt, node, "chunk", seq, _encode(data))


def done(job: Job, node: str, seq: int, completion: Completion) -> Event:
    return Event(job.id, job.attempt, node, "done", seq, _encode(completion))


def failed(job_id: str, attempt: int, node: str, seq: int, error: ErrorData) -> Event:
    return Event(job_id, attempt, node, "error", seq, _encode(error))


def _decode(decoder: msgspec.json.Decoder[_T], data: bytes) -> _T:
    try:
        return decoder.decode(data)
    # A worker's bytes: invalid UTF-8 (msgspec's UnicodeDecodeError) included.
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"malformed event data: {exc}") from None
