"""Stream protocol between gateway replicas and workers (see DESIGN.md), versions 1 and 2.

A job is an entry on the node's stream ``…:req:{node}`` with the string fields ``v``, ``id``,
``attempt``, ``reply_to``, ``deadline_ms`` (epoch ms), ``model``, ``stream`` (0/1),
``tenant``, ``traceparent`` and ``payload`` (JSON: messages and options). A worker answers
with events on ``reply_to``: ``id``, ``attempt``, ``node``, ``type``, ``seq`` and ``data``
(JSON whose shape depends on ``type``). The JSON Schemas are ``contracts/stream.*.json``.

While a job runs the worker writes an event at least every ``KEEPALIVE_S`` (text, or an
empty ``chunk`` as a keepalive), for whole answers as for streams: an accepted job whose
worker falls silent is lost, and the gateway gives it to another node. ``accepted``
announcing ``keepalive_s`` is an optional field that older gateways ignore, and a gateway
watches whole answers for silence only when the worker announced it.

Version 2 adds what an OpenAI application needs: tools, tool calls and tool results in
the payload, output formats and more sampling options, tool-call pieces in ``chunk``
events and tool calls in ``done``, embeddings jobs (``op: embed``, answered by a ``done``
holding the vectors), and the error reason ``invalid_request`` (the backend refused the
request itself). ``v`` says which version a job is written in: a worker that speaks 2
says so in its health entry (``protocol``), and the gateway writes version 2 only to such
workers, and version 1 (with v1 content, answered with v1 events) to older ones, so that a
fleet can be upgraded worker by worker. A job that needs version 2 goes only to nodes
that speak it (``backends/capabilities.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Final, Literal, TypeVar

import msgspec

from api_router.chat import ChatMessage, ChatOptions, Completion, history_features
from api_router.chat_tools import ToolCallDelta
from api_router.embeddings import MAX_INPUTS, Dimensions, EmbeddingInput, Embeddings

# The versions a worker of this release reads; it writes the latest into its health entry.
PROTOCOL_VERSIONS: Final = (1, 2)
LATEST_PROTOCOL: Final = 2

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
    "invalid_request",  # v2: the backend refused the request itself (its HTTP 400 or 422)
]
# What a job asks its worker to do (v2; a v1 job is always a chat).
Operation = Literal["chat", "embed"]


class ProtocolError(Exception):
    """A stream entry that does not follow the protocol."""


class JobPayload(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A chat job: the conversation and how to answer it."""

    messages: list[ChatMessage]
    options: ChatOptions = msgspec.field(default_factory=ChatOptions)

    def features(self) -> frozenset[str]:
        """What the job asks of a backend beyond v1 (see ``ChatOptions.features``)."""
        return self.options.features() | history_features(self.messages)


class EmbedPayload(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """An embeddings job (v2): one vector per input, ``dimensions`` long if given."""

    input: Annotated[list[EmbeddingInput], msgspec.Meta(min_length=1, max_length=MAX_INPUTS)]
    dimensions: Dimensions | None = None

    def features(self) -> frozenset[str]:
        return frozenset({"embeddings"} | ({"dimensions"} if self.dimensions else set()))


Payload = JobPayload | EmbedPayload


class AcceptedData(msgspec.Struct, frozen=True):
    """``keepalive_s``: the worker writes an event at least this often while the job runs,
    whole or streamed. Workers that predate it leave it out: the gateway then waits for a
    whole answer until its deadline, as it did."""

    consumer: str
    keepalive_s: float | None = None


class ChunkData(msgspec.Struct, frozen=True):
    """Text the backend produced since the previous chunk. ``tokens`` counts the backend's
    stream pieces it holds (one piece is one token for Ollama and OpenAI-compatible
    servers); an empty delta with no tokens is a keepalive. v2: ``tool_calls`` holds
    pieces of tool calls instead of text (absent otherwise)."""

    delta: str
    tokens: int = 0
    tool_calls: list[ToolCallDelta] | msgspec.UnsetType = msgspec.UNSET


class ErrorData(msgspec.Struct, frozen=True):
    reason: ErrorReason
    message: str
    retryable: bool = False


_payload_decoders: Final[dict[bytes, msgspec.json.Decoder[Payload]]] = {
    b"chat": msgspec.json.Decoder(JobPayload),
    b"embed": msgspec.json.Decoder(EmbedPayload),
}
_accepted_decoder = msgspec.json.Decoder(AcceptedData)
_chunk_decoder = msgspec.json.Decoder(ChunkData)
_done_decoder = msgspec.json.Decoder(Completion)
_embeddings_decoder = msgspec.json.Decoder(Embeddings)
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
    payload: Payload
    # The version the job was read in (a worker answers a v1 job with v1 events only).
    version: int = 1

    @property
    def operation(self) -> Operation:
        return "embed" if isinstance(self.payload, EmbedPayload) else "chat"

    @property
    def needs_v2(self) -> bool:
        return bool(self.payload.features())

    def to_fields(self, version: int = 1) -> dict[str, str | bytes]:
        """The stream entry in ``version`` (the newest the receiving worker speaks)."""
        if version == 1 and self.needs_v2:
            raise ValueError("this job needs protocol version 2")  # routing prevents it
        fields: dict[str, str | bytes] = {
            "v": str(version),
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
        if self.operation != "chat":
            fields["op"] = self.operation
        return fields

    @classmethod
    def from_fields(cls, fields: dict[bytes, bytes]) -> Job:
        try:
            version = int(fields[b"v"])
            if version not in PROTOCOL_VERSIONS:
                raise ProtocolError(f"unsupported protocol version {fields[b'v']!r}")
            operation = fields.get(b"op", b"chat") if version >= 2 else b"chat"
            decoder = _payload_decoders.get(operation)
            if decoder is None:
                raise ProtocolError(f"unknown operation {operation!r}")
            payload = decoder.decode(fields[b"payload"])
            if version == 1 and payload.features():
                raise ProtocolError("a version 1 job with version 2 content")
            return cls(
                id=fields[b"id"].decode(),
                attempt=int(fields[b"attempt"]),
                reply_to=fields[b"reply_to"].decode(),
                deadline_ms=int(fields[b"deadline_ms"]),
                model=fields[b"model"].decode(),
                stream=fields[b"stream"] == b"1",
                tenant=fields[b"tenant"].decode(),
                traceparent=fields[b"traceparent"].decode(),
                payload=payload,
                version=version,
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

    def embeddings(self) -> Embeddings:
        """The ``done`` of an embeddings job (v2)."""
        return _decode(_embeddings_decoder, self.data)

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


def done(job: Job, node: str, seq: int, answer: Completion | Embeddings) -> Event:
    return Event(job.id, job.attempt, node, "done", seq, _encode(answer))


def failed(job_id: str, attempt: int, node: str, seq: int, error: ErrorData) -> Event:
    return Event(job_id, attempt, node, "error", seq, _encode(error))


def job_failed(job: Job, node: str, seq: int, error: ErrorData) -> Event:
    """``failed`` in the job's version: a v1 job gets only v1 reasons."""
    if job.version == 1 and error.reason == "invalid_request":
        error = ErrorData("backend_error", error.message, error.retryable)
    return failed(job.id, job.attempt, node, seq, error)


def _decode(decoder: msgspec.json.Decoder[_T], data: bytes) -> _T:
    try:
        return decoder.decode(data)
    # A worker's bytes: invalid UTF-8 (msgspec's UnicodeDecodeError) included.
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"malformed event data: {exc}") from None
