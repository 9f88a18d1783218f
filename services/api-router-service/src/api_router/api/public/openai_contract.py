"""The requests of ``POST /v1/chat/completions`` as the official SDK sends them
(``openai_answers.py`` has what it answers).

A parameter is honoured (passed on, or mapped to the node's own API: see
``backends/capabilities.py`` for which kinds of node honour what), accepted and ignored
(``IGNORED``: it cannot change the answer we give), or refused with 400
``unsupported_parameter`` naming it: a client that asks for several choices or log
probabilities must not get an answer that silently lacks them. Unknown parameters are
refused the same way.
"""

from __future__ import annotations

import re
from typing import Annotated, Final, Literal

import msgspec

from api_router.api.body import decode_body
from api_router.api.public.inference_contract import ModelName
from api_router.chat import ChatMessage, ChatOptions, LogitBias, Penalty, ToolCalls, Tools
from api_router.chat_tools import ResponseFormat, ToolCallId, ToolChoice
from api_router.errors import ApiError

# Accepted and ignored; docs/api.md lists them with the reason.
IGNORED: Final = (
    "user",
    "store",
    "metadata",
    "service_tier",
    "safety_identifier",
    "prompt_cache_key",
    "name",
)

Stop = Annotated[str, msgspec.Meta(min_length=1)]


class TextPart(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    # A field, not a struct tag: msgspec requires a tag only to tell union members apart,
    # and a part without its type must be refused as the schema says.
    type: Literal["text"]
    text: str


Content = str | list[TextPart]


class _Message(
    msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True, tag_field="role"
):
    name: str | None = None  # ignored: one conversation, one speaker per role


class SystemMessage(_Message, frozen=True, tag="system"):
    content: Content


class DeveloperMessage(_Message, frozen=True, tag="developer"):
    """OpenAI's newer name for the system prompt."""

    content: Content


class UserMessage(_Message, frozen=True, tag="user"):
    content: Content


class AssistantMessageParam(_Message, frozen=True, tag="assistant"):
    """An earlier answer: its text, or the tool calls it made, or both."""

    content: Content | None = None
    tool_calls: ToolCalls | None = None


class ToolMessage(_Message, frozen=True, tag="tool"):
    """The result of the tool call ``tool_call_id``."""

    content: Content
    tool_call_id: ToolCallId


Message = SystemMessage | DeveloperMessage | UserMessage | AssistantMessageParam | ToolMessage


def to_chat(message: Message) -> ChatMessage:
    content = message.content
    text = "".join(part.text for part in content) if isinstance(content, list) else content
    text = text or ""  # an assistant message of tool calls alone has none
    if isinstance(message, SystemMessage | DeveloperMessage):
        return ChatMessage("system", text)
    if isinstance(message, AssistantMessageParam):
        return ChatMessage("assistant", text, tool_calls=message.tool_calls or None)
    if isinstance(message, ToolMessage):
        return ChatMessage("tool", text, tool_call_id=message.tool_call_id)
    return ChatMessage("user", text)


class StreamOptions(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    include_usage: bool = False


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
    frequency_penalty: Penalty | None = None
    presence_penalty: Penalty | None = None
    logit_bias: LogitBias | None = None
    response_format: ResponseFormat | None = None
    tools: Tools | None = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    # Accepted only at the value that asks for nothing we lack (the types say which, so
    # the schema does too); any other is unsupported_parameter (ONLY_VALUE says why).
    n: Literal[1] | None = None
    logprobs: Literal[False] | None = None
    # Ignored (IGNORED):
    user: str | None = None
    store: bool | None = None
    metadata: dict[str, str] | None = None
    service_tier: str | None = None
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None

    def options(self) -> ChatOptions:
        stop = [self.stop] if isinstance(self.stop, str) else self.stop
        return ChatOptions(
            temperature=self.temperature,
            top_p=self.top_p,
            max_tokens=self.max_completion_tokens or self.max_tokens,
            stop=stop,
            seed=self.seed,
            presence_penalty=self.presence_penalty,
            frequency_penalty=self.frequency_penalty,
            logit_bias=self.logit_bias,
            tools=self.tools,
            tool_choice=self.tool_choice,
            parallel_tool_calls=self.parallel_tool_calls,
            response_format=self.response_format,
        )

    def chat_messages(self) -> list[ChatMessage]:
        return [to_chat(message) for message in self.messages]

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
    "n": "only n=1 is supported: the gateway relays one choice",
    "logprobs": "log probabilities are not relayed",
}
# Parameters (by their path) whose other shapes are refused as unsupported, and why.
_UNSUPPORTED_SHAPES: Final = (
    (re.compile(r"^tools\[\d+\]\.type$"), "only function tools are supported"),
    (re.compile(r"\.content\[\d+\]"), "only text content parts are supported"),
)
_decoder = msgspec.json.Decoder(ChatCompletionRequest)
_UNKNOWN_FIELD = re.compile(r"unknown field `([^`]+)`(?: - at `\$\.?([^`]*)`)?")
_AT_PATH = re.compile(r" (?:at|in) `\$\.?([^`]*)`")


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
    for shape, why in _UNSUPPORTED_SHAPES:
        if param and shape.search(param):
            return ApiError("unsupported_parameter", f"{why}: {message}", param=param)
    return ApiError("invalid_request", f"invalid request body: {message}", param=param)
