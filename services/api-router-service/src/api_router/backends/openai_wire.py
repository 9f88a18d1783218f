"""The bodies of an OpenAI-compatible server (vLLM, llama.cpp server, LM Studio): read
leniently (servers differ in what they add or leave out), and the assembly of a streamed
answer's tool calls from their pieces."""

from __future__ import annotations

from typing import Any

import msgspec

from api_router.chat_tools import FunctionCall, ToolCall, ToolCallDelta


class ReplyFunction(msgspec.Struct):
    name: str
    # JSON text, as OpenAI sends it; some servers send the object itself.
    arguments: str | dict[str, Any] = ""


class ReplyToolCall(msgspec.Struct):
    function: ReplyFunction
    id: str = ""

    def to_call(self, index: int) -> ToolCall:
        arguments = self.function.arguments
        if not isinstance(arguments, str):
            arguments = msgspec.json.encode(arguments).decode()
        return ToolCall(self.id or f"call_{index}", FunctionCall(self.function.name, arguments))


class ReplyMessage(msgspec.Struct):
    content: str | None = None
    tool_calls: list[ReplyToolCall] | None = None


class Choice(msgspec.Struct):
    message: ReplyMessage
    finish_reason: str | None = None


class ReplyUsage(msgspec.Struct):
    prompt_tokens: int = 0
    completion_tokens: int = 0


class ChatReply(msgspec.Struct):
    choices: list[Choice]
    usage: ReplyUsage = msgspec.field(default_factory=ReplyUsage)


class StreamDelta(msgspec.Struct):
    content: str | None = None
    tool_calls: list[ToolCallDelta] | None = None


class StreamChoice(msgspec.Struct):
    delta: StreamDelta = msgspec.field(default_factory=StreamDelta)
    finish_reason: str | None = None


class StreamChunk(msgspec.Struct):
    choices: list[StreamChoice] = msgspec.field(default_factory=list)
    usage: ReplyUsage | None = None


class Embedding(msgspec.Struct):
    embedding: list[float]
    index: int = 0


class EmbeddingList(msgspec.Struct):
    data: list[Embedding]
    usage: ReplyUsage = msgspec.field(default_factory=ReplyUsage)


class ToolCallAssembly:
    """A streamed answer's tool calls, put together from their pieces by ``index``."""

    def __init__(self) -> None:
        self._calls: dict[int, tuple[str, str, list[str]]] = {}

    def add(self, delta: ToolCallDelta) -> None:
        call_id, name, arguments = self._calls.get(delta.index, ("", "", []))
        function = delta.function
        if function is not None:
            name = name or function.name or ""
            if function.arguments:
                arguments.append(function.arguments)
        self._calls[delta.index] = (call_id or delta.id or "", name, arguments)

    def calls(self) -> list[ToolCall]:
        return [
            ToolCall(call_id or f"call_{index}", FunctionCall(name, "".join(arguments)))
            for index, (call_id, name, arguments) in sorted(self._calls.items())
        ]
