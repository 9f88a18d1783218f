"""The bodies of the embeddings routes: OpenAI's ``POST /v1/embeddings`` and our
``POST /v1/embed`` (with the node and the router's timings, like ``/v1/inference``)."""

from __future__ import annotations

import re
from typing import Annotated, Literal

import msgspec

from api_router.api.body import decode_body
from api_router.api.public.inference_contract import (
    MetadataKey,
    MetadataValue,
    ModelName,
    Timings,
)
from api_router.embeddings import MAX_INPUTS, Dimensions, EmbeddingInput
from api_router.errors import ApiError

EncodingFormat = Literal["float", "base64"]
Inputs = (
    EmbeddingInput
    | Annotated[list[EmbeddingInput], msgspec.Meta(min_length=1, max_length=MAX_INPUTS)]
)


def input_list(inputs: str | list[str]) -> list[str]:
    return [inputs] if isinstance(inputs, str) else inputs


class EmbeddingRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """OpenAI's request: one text or a list of texts (token-id inputs are refused)."""

    model: ModelName
    input: Inputs
    encoding_format: EncodingFormat = "float"
    dimensions: Dimensions | None = None
    user: str | None = None  # ignored, as on the chat route


class EmbeddingItem(msgspec.Struct, frozen=True):
    index: int
    # floats, or base64 of little-endian float32 with encoding_format "base64"
    embedding: list[float] | str
    object: Literal["embedding"] = "embedding"


class EmbeddingUsage(msgspec.Struct, frozen=True):
    prompt_tokens: int
    total_tokens: int


class EmbeddingList(msgspec.Struct, frozen=True):
    data: list[EmbeddingItem]
    model: str
    usage: EmbeddingUsage
    object: Literal["list"] = "list"


class EmbedRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``POST /v1/embed``: the same inputs and options, with metadata like /v1/inference."""

    model: ModelName
    input: Inputs
    encoding_format: EncodingFormat = "float"
    dimensions: Dimensions | None = None
    metadata: Annotated[dict[MetadataKey, MetadataValue], msgspec.Meta(max_length=16)] = (
        msgspec.field(default_factory=dict)
    )


class EmbedResponse(msgspec.Struct, frozen=True):
    """One vector per input, in input order; ``timings`` as on /v1/inference."""

    id: str
    created: int
    model: str
    node_id: str
    # all floats, or all base64 of little-endian float32 (encoding_format)
    embeddings: list[list[float] | str]
    encoding_format: EncodingFormat
    usage: EmbeddingUsage
    timings: Timings
    object: Literal["embed"] = "embed"


_embedding_request = msgspec.json.Decoder(EmbeddingRequest)
_embed_request = msgspec.json.Decoder(EmbedRequest)
_UNKNOWN_FIELD = re.compile(r"unknown field `([^`]+)`")
_AT_PATH = re.compile(r" (?:at|in) `\$\.?([^`]*)`")
_TOKEN_IDS = re.compile(r"got `(int|array)` - at `\$\.input")


def decode_embedding_request(body: bytes) -> EmbeddingRequest:
    """OpenAI's spelling of a refusal: ``param`` names the parameter at fault."""
    return decode_body(body, _embedding_request, _openai_error)


def decode_embed_request(body: bytes) -> EmbedRequest:
    return decode_body(body, _embed_request)


def _openai_error(message: str) -> ApiError:
    unknown = _UNKNOWN_FIELD.search(message)
    if unknown:
        param = unknown.group(1)
        return ApiError(
            "unsupported_parameter", f"parameter {param!r} is not supported", param=param
        )
    if _TOKEN_IDS.search(message):
        return ApiError(
            "unsupported_parameter", "input as token ids is not supported: send text", param="input"
        )
    at = _AT_PATH.search(message)
    return ApiError(
        "invalid_request", f"invalid request body: {message}", param=at[1] if at else None
    )
