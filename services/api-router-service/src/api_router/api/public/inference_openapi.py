"""The OpenAPI paths of ``POST /v1/inference``."""

from __future__ import annotations

from api_router.api.openapi_operation import Refs, Spec, errors, json_content, operation

# Every status the inference routes answer besides 200 (both spellings).
INFERENCE_ERRORS = ("400", "401", "403", "404", "408", "413", "415", "502", "503", "504")
_STREAM_OF_INFERENCE = (
    "With `stream: true`: server-sent events `chunk` (data: inference.chunk), then `done` "
    "(data: inference.done) or `error` (data: the error shape); comment lines are heartbeats."
)


def inference_paths(ref: Refs) -> Spec:
    error = ref["error"]
    done = {
        "description": "The completion, with router-computed timings. " + _STREAM_OF_INFERENCE,
        "headers": {
            "X-Request-Id": {"schema": {"type": "string"}},
            "Server-Timing": {"schema": {"type": "string"}},
            "X-Route-Node": {"schema": {"type": "string"}},
            "X-Route-Attempts": {"schema": {"type": "string"}},
        },
        "content": {
            **json_content(ref["inference.response"]),
            **event_stream({"oneOf": [ref["inference.chunk"], ref["inference.done"], error]}),
        },
    }
    return {
        "/v1/inference": {
            "post": operation(
                "createInference",
                "Run a chat completion on the best available node",
                {"200": done, **errors(error, INFERENCE_ERRORS)},
                body=ref["inference.request"],
            )
        }
    }


def event_stream(schema: Spec) -> Spec:
    """``text/event-stream``; ``schema`` describes the JSON in each ``data:`` line."""
    return {"text/event-stream": {"schema": {"type": "string", "x-data-schema": schema}}}
