"""The bodies of the OpenAI-compatible routes (``/v1/chat/completions``, ``/v1/models``),
as the official SDK sends and reads them.

A parameter is either honoured, accepted and ignored (``IGNORED``: it cannot change the
answer we give), or refused with 400 ``unsupported_parameter`` naming it: a client that
asks for tools, several choices or log probabilities must not get an answer that silently
lacks them. Unknown parameters are refused the same way.
"""

from __future__ import annotations

import re
from typing import Annotated, Final, Literal

import msgspec

from api_router.api.body import decode_body
from api_router.api.public.inference_contract import ModelName
from api_router.chat import ChatMessage, ChatOptions
from api_router.errors import CATALOG, ApiError

# Accepted and ignored; docs/api.md lists them with the reason.
IGNORED: Final = ("user", "store", "metadata", "service_tier", "parallel_tool_calls", "name")
# The paths whose errors are spelled OpenAI's way (with `param`).
OPENAI_PATHS: Final = frozenset({"/v1/chat/completions", "/v1/models"})
FINISH_REASONS: Final = frozenset({"stop", "length", "content_filter", "tool_calls"})

Stop = Annotated[str, msgspec.Meta(min_length=1)]


class TextPart(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    # A field, not a struct tag: msgspec requires a tag only to tell union members apart,
    # and a part without its type must be refused as the schema says.
    type: Literal["text"]
    text: str


class Message(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None
    name: str | None = None  # ignored: one conversation, one speaker per role

    def to_chat(self) -> ChatMessage:
        text = self.content if isinstance(self.content, str) else ""
        if isinstance(self.content, list):
            text = "".join(part.text for part in self.content)
        # `developer` is OpenAI's newer name for the system prompt.
        return ChatMessage("system" if self.role == "developer" else self.role, text)


class StreamOptions(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    include_usage: bool = False


class ResponseFormat(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    type: Literal["text"]


class ChatCompletionRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    model: ModelName
    messages: Annotated[list[Message], msgspec.Meta(min_length=1, max_length=256)]
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: Annotated[float, msgspec.Meta(ge=0, le=2)] | None = None
    top_p: Annotated[float, msgspec.Meta(ge=0, le=1)] | None = None
    max_tokens: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] | None = None
    max_completion_tokens: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] | None = None
    stop: Stop | Annotated[list[Stop], msgspec.Meta(max_length=8)] | None = None
    seed: int | None = None
    # Accepted only at the value that asks for nothing we lack (the types say which, so
    # the schema does too); any other is unsupported_parameter (ONLY_VALUE says why).
    n: Literal[1] | None = None
    frequency_penalty: Annotated[float, msgspec.Meta(ge=0, le=0)] | None = None
    presence_penalty: Annotated[float, msgspec.Meta(ge=0, le=0)] | None = None
    logprobs: Literal[False] | None = None
    response_format: ResponseFormat | None = None
    # Ignored (IGNORED):
    user: str | None = None
    store: bool | None = None
    metadata: dict[str, str] | None = None
    service_tier: str | None = None
    parallel_tool_calls: bool | None = None

    def options(self) -> ChatOptions:
        stop = [self.stop] if isinstance(self.stop, str) else self.stop
        return ChatOptions(
            temperature=self.temperature,
            top_p=self.top_p,
            max_tokens=self.max_completion_tokens or self.max_tokens,
            stop=stop,
            seed=self.seed,
        )

    @property
    def include_usage(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage


# A stream's options need a stream (the server refuses them otherwise, see
# decode_chat_request); the OpenAPI document states it beside the struct's own schema.
STREAM_OPTIONS_NEED_STREAM: Final = {
    "if": {"properties": {"stream_options": {"type": "object"}}, "required": ["stream_options"]},
    "then": {"properties": {"stream": {"const": True}}, "required": ["stream"]},
}
ONLY_VALUE: Final = {
    "n": "only n=1 is supported",
    "frequency_penalty": "only 0 is supported",
    "presence_penalty": "only 0 is supported",
    "logprobs": "log probabilities are not available",
    "response_format": 'only {"type": "text"} is supported',
}
_decoder = msgspec.json.Decoder(ChatCompletionRequest)
_UNKNOWN_FIELD = re.compile(r"unknown field `([^`]+)`(?: - at `\$\.?([^`]*)`)?")
_AT_PATH = re.compile(r" - at `\$\.?([^`]*)`")


def decode_chat_request(body: bytes) -> ChatCompletionRequest:
    """Decode and check; the error's ``param`` names the parameter at fault."""
    request = decode_body(body, _decoder, _validation_error)
    if request.stream_options is not None and not request.stream:
        raise ApiError(
            "invalid_request", "stream_options needs stream: true", param="stream_options"
        )
    return request


def _validation_error(message: str) -> ApiError:
    unknown = _UNKNOWN_FIELD.search(message)
    if unknown:
        name, parent = unknown.group(1), unknown.group(2)
        param = f"{parent}.{name}" if parent else name
        return ApiError(
            "unsupported_parameter", f"parameter {param!r} is not supported", param=param
        )
    at = _AT_PATH.search(message)
    param = at[1] if at else None
    name = (param or "").partition(".")[0]
    if name in ONLY_VALUE:
        return ApiError("unsupported_parameter", f"{name}: {ONLY_VALUE[name]}", param=name)
    if param and ".content[" in param:  # a content part other than text (images, audio)
        return ApiError(
            "unsupported_parameter",
            f"only text content parts are supported: {message}",
            param=param,
        )
    return ApiError("invalid_request", f"invalid request body: {message}", param=param)


# --- answers -----------------------------------------------------------------------


class CompletionUsage(msgspec.Struct, frozen=True):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AssistantMessage(msgspec.Struct, frozen=True):
    content: str
    role: Literal["assistant"] = "assistant"


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
