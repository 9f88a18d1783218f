"""The bodies of ``POST /v1/inference``: decoded strictly, encoded fast.

These structs are the source of ``contracts/inference.*.schema.json`` and of the OpenAPI
document, so code and contract cannot drift apart.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from api_router.api.body import decode_body
from api_router.chat import ChatMessage, ChatOptions
from api_router.chat_tools import ToolCallDelta

ModelName = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,255}$",
        description="Model name as the nodes serve it, for example 'llama3.2' or 'qwen2.5:7b'",
        examples=["llama3.2"],
    ),
]
MetadataKey = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
MetadataValue = Annotated[str, msgspec.Meta(max_length=512)]


class InferenceRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A chat completion request; ``options`` holds the sampling options, the tools offered
    and the output format."""

    model: ModelName
    messages: Annotated[list[ChatMessage], msgspec.Meta(min_length=1, max_length=256)]
    options: ChatOptions = msgspec.field(default_factory=ChatOptions)
    stream: bool = False
    metadata: Annotated[dict[MetadataKey, MetadataValue], msgspec.Meta(max_length=16)] = (
        msgspec.field(default_factory=dict)
    )


class TokenUsage(msgspec.Struct, frozen=True):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class Timings(msgspec.Struct, frozen=True):
    """Milliseconds, measured by the router: total = gateway + queue + inference."""

    total_ms: float
    gateway_ms: float
    queue_ms: float
    inference_ms: float


def server_timing(timings: Timings) -> str:
    """The ``Server-Timing`` field of a whole answer."""
    return (
        f"gateway;dur={timings.gateway_ms}, queue;dur={timings.queue_ms}, "
        f"inference;dur={timings.inference_ms}, total;dur={timings.total_ms}"
    )


class StreamTimings(Timings, frozen=True):
    """Timings of a streamed answer; ``ttft_ms`` runs from arrival to the first text
    handed to the client."""

    ttft_ms: float


class StreamDelta(msgspec.Struct, frozen=True):
    """``event: chunk`` of a streamed answer: the text since the previous chunk, or (with
    an empty ``delta``) a piece of a tool call, in OpenAI's streaming shape."""

    delta: str
    tool_calls: list[ToolCallDelta] | msgspec.UnsetType = msgspec.UNSET


class StreamDone(msgspec.Struct, frozen=True):
    """``event: done``, the last event of a streamed answer."""

    id: str
    created: int
    model: str
    node_id: str
    finish_reason: str
    usage: TokenUsage
    timings: StreamTimings
    metadata: dict[str, str]
    object: Literal["inference.done"] = "inference.done"


class InferenceResponse(msgspec.Struct, frozen=True):
    """A finished chat completion."""

    id: str
    created: int
    model: str
    node_id: str
    message: ChatMessage  # with tool_calls when the model called tools
    finish_reason: str
    usage: TokenUsage
    timings: Timings
    # String pairs the node attached to its answer (the mock backend marks itself here).
    metadata: dict[str, str]
    object: Literal["inference"] = "inference"


_decoder = msgspec.json.Decoder(InferenceRequest)
encode_response = msgspec.json.Encoder().encode


def decode_request(body: bytes) -> InferenceRequest:
    """Decode and validate; the error names the field path (``$.messages[0].role``)."""
    return decode_body(body, _decoder)


class InferenceJob(msgspec.Struct, frozen=True):
    """An asynchronous inference job (``Prefer: respond-async``) that has not finished:
    ``queued`` until a node's worker accepts it, then ``running``; ``cancelled`` answers
    its DELETE."""

    id: str
    created: int
    status: Literal["queued", "running", "cancelled"]
    object: Literal["inference.job"] = "inference.job"
