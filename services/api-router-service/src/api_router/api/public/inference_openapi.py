"""The OpenAPI paths of ``POST /v1/inference``."""

from __future__ import annotations

from api_router.api.openapi_operation import Refs, Spec, errors, json_content, link, operation
from api_router.api.public.idempotency_openapi import (
    IDEMPOTENCY_ERRORS,
    IDEMPOTENCY_KEY,
    PREFER_WAIT,
    REPLAYED,
)

# Every status the inference routes answer besides 200 (both spellings): the request (400,
# 408, 413, 415), the caller (401, 403), limits and budget (402, 429), the model (404) and
# the nodes (502, 503, 504).
INFERENCE_ERRORS = (
    "400",
    "401",
    "402",
    "403",
    "404",
    "408",
    "413",
    "415",
    "429",
    "502",
    "503",
    "504",
)
_STREAM_OF_INFERENCE = (
    "With `stream: true`: server-sent events `chunk` (data: inference.chunk), then `done` "
    "(data: inference.done) or `error` (data: the error shape); comment lines are heartbeats."
)


def inference_paths(ref: Refs) -> Spec:
    error = ref["error"]
    headers: Spec = {
        "X-Request-Id": {"schema": {"type": "string"}},
        "Server-Timing": {"schema": {"type": "string"}},
        "X-Route-Node": {"schema": {"type": "string"}},
        "X-Route-Attempts": {"schema": {"type": "string"}},
    }
    done = {
        "description": "The completion, with router-computed timings. " + _STREAM_OF_INFERENCE,
        "headers": {**headers, **REPLAYED},
        "content": {
            **json_content(ref["inference.response"]),
            **event_stream(
                {
                    "oneOf": [
                        sse_event(ref["inference.chunk"], "chunk"),
                        sse_event(ref["inference.done"], "done"),
                        sse_event(error, "error"),
                    ]
                }
            ),
        },
        "links": {"GetAuditRecord": link("getAuditRecord", request_id="$response.body#/id")},
    }
    embedded = {
        "description": "One vector per input, with the node and router-computed timings",
        "headers": headers,
        "content": json_content(ref["embed.response"]),
        "links": done["links"],
    }
    return {
        "/v1/inference": {
            "post": operation(
                "createInference",
                "Run a chat completion on the best available node",
                {"200": done, **errors(error, (*INFERENCE_ERRORS, *IDEMPOTENCY_ERRORS))},
                body=ref["inference.request"],
                parameters=[IDEMPOTENCY_KEY, PREFER_WAIT],
            )
        },
        "/v1/embed": {
            "post": operation(
                "createEmbed",
                "Embed one text or a list of texts on the best available node",
                {"200": embedded, **errors(error, INFERENCE_ERRORS)},
                body=ref["embed.request"],
            )
        },
    }


def event_stream(event: Spec) -> Spec:
    """``text/event-stream``, each event (its ``event``, ``data``, ``id``, ``retry``
    fields) described by ``event``, as OpenAPI 3.1 tools read an event stream's schema."""
    return {"text/event-stream": {"schema": event}}


def sse_event(data: Spec, name: str | None = None) -> Spec:
    """An event whose ``data`` is JSON described by ``data`` (and whose ``event`` field is
    ``name``, where the stream names its events)."""
    # The data field is a string holding JSON (what `contentSchema` describes).
    text = {"type": "string", "contentMediaType": "application/json", "contentSchema": data}
    spec: Spec = {"type": "object", "properties": {"data": text}, "required": ["data"]}
    if name is not None:
        spec["properties"]["event"] = {"const": name}
        spec["required"].append("event")
    return spec
