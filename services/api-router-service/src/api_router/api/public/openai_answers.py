"""What the OpenAI-compatible routes answer, as the official SDK reads it: completions and
their stream chunks, model lists, errors (``openai_contract.py`` has the requests,
``embeddings_contract.py`` the embeddings)."""

from __future__ import annotations

from typing import Final, Literal

import msgspec

from api_router.chat_tools import ToolCall, ToolCallDelta
from api_router.errors import CATALOG, ApiError

# The paths whose errors are spelled OpenAI's way (with `param`).
OPENAI_PATHS: Final = frozenset({"/v1/chat/completions", "/v1/models", "/v1/embeddings"})
FINISH_REASONS: Final = frozenset({"stop", "length", "content_filter", "tool_calls"})


class CompletionUsage(msgspec.Struct, frozen=True):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AssistantMessage(msgspec.Struct, frozen=True):
    # null when the answer is only tool calls, as OpenAI sends it
    content: str | None
    role: Literal["assistant"] = "assistant"
    tool_calls: list[ToolCall] | msgspec.UnsetType = msgspec.UNSET


class Choice(msgspec.Struct, frozen=True):
    index: int
    message: AssistantMessage
    finish_reason: str
    logprobs: None = None


class ChatCompletion(msgspec.Struct, frozen=True):
    id: str
    created: int
    model: str
    choices: list[Choice]
    usage: CompletionUsage
    object: Literal["chat.completion"] = "chat.completion"


class Delta(msgspec.Struct, frozen=True, omit_defaults=True):
    role: Literal["assistant"] | None = None
    content: str | None = None
    tool_calls: list[ToolCallDelta] | None = None


class ChunkChoice(msgspec.Struct, frozen=True):
    index: int
    delta: Delta
    finish_reason: str | None = None
    logprobs: None = None


class ChatCompletionChunk(msgspec.Struct, frozen=True):
    id: str
    created: int
    model: str
    choices: list[ChunkChoice]
    # Absent unless the client asked for usage; then null until the usage-only chunk.
    usage: CompletionUsage | None | msgspec.UnsetType = msgspec.UNSET
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"


class Model(msgspec.Struct, frozen=True):
    id: str
    created: int = 0
    owned_by: str = "api-router"
    object: Literal["model"] = "model"


class ModelList(msgspec.Struct, frozen=True):
    data: list[Model]
    object: Literal["list"] = "list"


class OpenAIErrorBody(msgspec.Struct, frozen=True):
    message: str
    type: str
    param: str | None
    code: str
    request_id: str | None


class OpenAIError(msgspec.Struct, frozen=True):
    error: OpenAIErrorBody


def openai_error_body(error: ApiError, request_id: str | None) -> bytes:
    """OpenAI's error shape, with our catalog code and type (and our request id)."""
    kind = CATALOG[error.code]
    body = OpenAIErrorBody(error.message, kind.type, error.param, error.code, request_id)
    return msgspec.json.encode(OpenAIError(body))


def finish_reason(reason: str) -> str:
    """Backends have their own reasons (Ollama: ``load``, ``unload``); OpenAI has four."""
    return reason if reason in FINISH_REASONS else "stop"
