"""The OpenAPI paths of ``POST /v1/inference``."""

from __future__ import annotations

from api_router.api.openapi_operation import (
    Refs,
    Spec,
    errors,
    json_content,
    link,
    matching,
    operation,
    parameter,
)
from api_router.api.public.idempotency_openapi import (
    IDEMPOTENCY_ERRORS,
    IDEMPOTENCY_KEY,
    REPLAYED,
    prefer,
)
from api_router.api.request_context import REQUEST_ID_PATTERN

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


PREFER_INFERENCE = prefer(
    "`respond-async` (RFC 7240; ignored with `stream: true`): 202 at once with `Location: "
    "/v1/inference/{request_id}`; the job runs whether or not the client stays, and GET on "
    "that location answers its result. `wait=N`: a retry whose first request (same "
    "Idempotency-Key) still runs waits up to N seconds for its answer instead of 409."
)
_JOB_LOCATION = {
    "Location": {"description": "/v1/inference/{request_id}", "schema": {"type": "string"}},
    "Retry-After": {"description": "Seconds before polling again", "schema": {"type": "string"}},
}
# What a finished job may have ended in, besides its own 200: the errors of a run.
# (401 and 403 are the caller's own, as on every route.)
_JOB_ERRORS = ("400", "401", "402", "403", "404", "408", "410", "429", "502", "503", "504")


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
    get_job = link("getInferenceJob", request_id="$response.body#/id")
    pending = {
        "description": "With `Prefer: respond-async`: the job, accepted (`queued`)",
        "headers": {**_JOB_LOCATION, **REPLAYED},
        "content": json_content(ref["inference.job"]),
        "links": {"GetInferenceJob": get_job},
    }
    job_id = [parameter("request_id", "path", schema=matching(REQUEST_ID_PATTERN))]
    return {
        "/v1/inference": {
            "post": operation(
                "createInference",
                "Run a chat completion on the best available node",
                {
                    "200": done,
                    "202": pending,
                    **errors(error, (*INFERENCE_ERRORS, *IDEMPOTENCY_ERRORS)),
                },
                body=ref["inference.request"],
                parameters=[IDEMPOTENCY_KEY, PREFER_INFERENCE],
            )
        },
        "/v1/inference/{request_id}": {
            "get": operation(
                "getInferenceJob",
                "The result of an asynchronous job: 202 while it runs, then the body (or "
                "the error) a synchronous call would have answered; 410 once cancelled",
                {
                    "200": {
                        "description": "The completion, as a synchronous call answers it",
                        "headers": headers,
                        "content": json_content(ref["inference.response"]),
                    },
                    "202": {
                        "description": "Still `queued` or `running`",
                        "headers": _JOB_LOCATION,
                        "content": json_content(ref["inference.job"]),
                    },
                    **errors(error, _JOB_ERRORS),
                },
                parameters=job_id,
            ),
            "delete": operation(
                "cancelInferenceJob",
                "Cancel a queued or running job (its node stops generating; what was "
                "generated is charged); 409 once it has finished",
                {
                    "200": {
                        "description": "Cancelled",
                        "content": json_content(ref["inference.job"]),
                    },
                    **errors(error, ("401", "403", "404", "409", "503")),
                },
                parameters=job_id,
            ),
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
