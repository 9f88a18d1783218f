"""Ollama's ``/api/chat`` and ``/api/embed`` bodies, and the mapping between them and the
OpenAI shapes the rest of the gateway speaks.

Mapped, not passed: a tool call's ``arguments`` (OpenAI: JSON text; Ollama: an object),
a tool result's call (OpenAI: ``tool_call_id``; Ollama: ``tool_name``, the called
function's name, found through the id in the history), tool calls without ids (Ollama
gives none: each gets a fresh ``call_…``), ``tool_choice: "none"`` (no tools are sent),
``response_format`` (Ollama's ``format``: ``"json"`` or the schema) and ``max_tokens``
(``num_predict``). ``parallel_tool_calls: false`` keeps an answer's first tool call only:
Ollama cannot be told, and the client asked for at most one.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

import msgspec

from api_router.backends.base import BackendError
from api_router.chat import ChatMessage, ChatOptions
from api_router.chat_tools import FunctionCall, JsonObjectFormat, JsonSchemaFormat, ToolCall


class OllamaFunction(msgspec.Struct):
    name: str
    arguments: dict[str, Any] | str = msgspec.field(default_factory=dict)


class OllamaToolCall(msgspec.Struct):
    function: OllamaFunction
    id: str | None = None  # recent versions number their calls; older ones do not


class OllamaMessage(msgspec.Struct):
    content: str = ""
    tool_calls: list[OllamaToolCall] | None = None


class ChatReply(msgspec.Struct):
    message: OllamaMessage
    done_reason: str = "stop"
    prompt_eval_count: int = 0
    eval_count: int = 0


class StreamLine(msgspec.Struct):
    """One NDJSON line of a streamed ``/api/chat``; the last has ``done`` and the counts."""

    message: OllamaMessage | None = None
    done: bool = False
    done_reason: str = "stop"
    prompt_eval_count: int = 0
    eval_count: int = 0
    error: str | None = None


class EmbedReply(msgspec.Struct):
    embeddings: list[list[float]]
    prompt_eval_count: int = 0


def chat_body(
    model: str, messages: Sequence[ChatMessage], options: ChatOptions, stream: bool
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": model,
        "messages": [_message(m, messages) for m in messages],
        "stream": stream,
        "options": ollama_options(options),
    }
    if options.tools and options.tool_choice != "none":
        body["tools"] = options.tools  # Ollama takes OpenAI's shape
    if isinstance(options.response_format, JsonObjectFormat):
        body["format"] = "json"
    elif isinstance(options.response_format, JsonSchemaFormat):
        body["format"] = options.response_format.json_schema.schema or {"type": "object"}
    return body


def ollama_options(options: ChatOptions) -> dict[str, Any]:
    """Our sampling options in Ollama's names (``max_tokens`` is ``num_predict``)."""
    mapped: dict[str, Any] = {
        "temperature": options.temperature,
        "top_p": options.top_p,
        "num_predict": options.max_tokens,
        "stop": options.stop,
        "seed": options.seed,
        "presence_penalty": options.presence_penalty,
        "frequency_penalty": options.frequency_penalty,
    }
    return {name: value for name, value in mapped.items() if value is not None}


def tool_calls(calls: list[OllamaToolCall] | None, options: ChatOptions) -> list[ToolCall]:
    """Ollama's calls in OpenAI's shape, each with an id."""
    if not calls:
        return []
    if options.parallel_tool_calls is False:
        calls = calls[:1]
    return [
        ToolCall(call.id or new_call_id(), FunctionCall(call.function.name, _text(call.function)))
        for call in calls
    ]


def new_call_id() -> str:
    return f"call_{secrets.token_hex(12)}"


def _text(function: OllamaFunction) -> str:
    arguments = function.arguments
    return arguments if isinstance(arguments, str) else msgspec.json.encode(arguments).decode()


def _message(message: ChatMessage, history: Sequence[ChatMessage]) -> dict[str, Any]:
    out: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        out["tool_calls"] = [
            {"function": {"name": call.function.name, "arguments": _arguments(call)}}
            for call in message.tool_calls
        ]
    if message.tool_call_id is not None:
        name = _called_function(message.tool_call_id, history)
        if name is not None:
            out["tool_name"] = name
    return out


def _arguments(call: ToolCall) -> dict[str, Any]:
    try:
        arguments = msgspec.json.decode(call.function.arguments.strip() or "{}")
    except msgspec.DecodeError:
        arguments = None
    if not isinstance(arguments, dict):
        raise BackendError(
            "invalid_request",
            f"ollama takes a tool call's arguments as a JSON object; call {call.id!r} has "
            f"{call.function.arguments[:100]!r}",
            retryable=False,
        )
    return arguments


def _called_function(call_id: str, history: Sequence[ChatMessage]) -> str | None:
    for message in history:
        for call in message.tool_calls or ():
            if call.id == call_id:
                return call.function.name
    return None
