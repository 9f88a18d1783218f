"""The JSON Schemas of the stream protocol (``contracts/stream.job`` and ``stream.event``):
the entries' envelope is written here (Redis stream fields are all strings); the JSON
they carry is described by the structs that encode and decode it, so the published
schema cannot drift from the code. ``api/contract_registry.py`` writes them out.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from api_router.chat import Completion
from api_router.dispatch.protocol import (
    AcceptedData,
    ChunkData,
    EmbedPayload,
    ErrorData,
    JobPayload,
)
from api_router.embeddings import Embeddings

_REF: Final = "#/$defs/{name}"
_CARRIED: Final = (
    JobPayload,
    EmbedPayload,
    AcceptedData,
    ChunkData,
    Completion,
    Embeddings,
    ErrorData,
)


def _json(description: str, *schemas: str) -> dict[str, Any]:
    content = [{"$ref": _REF.format(name=name)} for name in schemas]
    return {
        "type": "string",
        "contentMediaType": "application/json",
        "contentSchema": content[0] if len(content) == 1 else {"anyOf": content},
        "description": description,
    }


def _defs() -> dict[str, Any]:
    _, defs = msgspec.json.schema_components(_CARRIED, ref_template=_REF)
    return defs


def job_schema() -> dict[str, Any]:
    return {
        "description": "A job on a node's stream (<prefix>:req:{node}, consumer group "
        "'workers'), protocol v1 or v2. Redis stream fields are strings; 'payload' holds "
        "JSON: $defs/JobPayload for a chat, $defs/EmbedPayload for an embeddings job (v2).",
        "type": "object",
        "additionalProperties": False,
        "required": [
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
        ],
        "properties": {
            "v": {
                "enum": ["1", "2"],
                "description": "Protocol version: 2 only to a worker whose health entry "
                "says protocol 2; a v1 job holds only v1 content (no tools, tool calls, "
                "output formats or v2 sampling options)",
            },
            "op": {
                "enum": ["chat", "embed"],
                "description": "v2: what to do (absent: chat)",
            },
            "id": {
                "type": "string",
                "pattern": "^req_[0-9a-f]{32}$",
                "description": "The request id",
            },
            "attempt": {
                "type": "string",
                "pattern": "^[1-9][0-9]*$",
                "description": "1 for the first attempt, counting up on failover",
            },
            "reply_to": {
                "type": "string",
                "minLength": 1,
                "description": "The stream the worker writes its events to",
            },
            "deadline_ms": {
                "type": "string",
                "pattern": "^[0-9]{13}$",
                "description": "Epoch milliseconds after which nobody waits for the answer",
            },
            "model": {"type": "string", "minLength": 1},
            "stream": {
                "enum": ["0", "1"],
                "description": "1 when the client wants chunks as they are generated "
                "(never for an embeddings job)",
            },
            "tenant": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$"},
            "traceparent": {
                "type": "string",
                "pattern": "^(|[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2})$",
                "description": "W3C trace context of the gateway's span",
            },
            "payload": _json("The job", "JobPayload", "EmbedPayload"),
        },
        "$defs": _defs(),
    }


def event_schema() -> dict[str, Any]:
    return {
        "description": "A worker event on the reply stream named by the job's reply_to. "
        "Redis stream fields are strings; 'data' holds JSON whose schema depends on 'type': "
        "accepted $defs/AcceptedData; chunk $defs/ChunkData (text, or v2 tool-call pieces; "
        "an empty delta with 0 tokens is a keepalive, written every 2 s while the backend "
        "is silent, for streamed and whole answers alike); done $defs/Completion (a chat) "
        "or $defs/Embeddings (an embeddings job, v2); error $defs/ErrorData. A v1 job is "
        "answered with v1 content only.",
        "type": "object",
        "additionalProperties": False,
        "required": ["id", "attempt", "node", "type", "seq", "data"],
        "properties": {
            "id": {"type": "string", "minLength": 1, "description": "The job's (request's) id"},
            "attempt": {"type": "string", "pattern": "^[1-9][0-9]*$"},
            "node": {"type": "string", "minLength": 1},
            "type": {"enum": ["accepted", "chunk", "done", "error"]},
            "seq": {
                "type": "string",
                "pattern": "^[0-9]+$",
                "description": "0 for accepted, then 1, 2, ... for the chunk events and "
                "the final done or error of the attempt",
            },
            "data": _json(
                "By type",
                "AcceptedData",
                "ChunkData",
                "Completion",
                "Embeddings",
                "ErrorData",
            ),
        },
        "$defs": _defs(),
    }
