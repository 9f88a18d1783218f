"""Ollama (``/api/chat``, ``/api/embed``, ``/api/tags``, ``/api/ps``), as on
Raspberry-Pi-class nodes. How OpenAI's shapes become Ollama's is ``ollama_wire.py``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence

import aiohttp
import msgspec

from api_router.backends.base import (
    INVENTORY_TIMEOUT_S,
    BackendError,
    ModelInventory,
    checked_vectors,
    refuse_unhonoured,
)
from api_router.backends.http_client import JsonHttpClient
from api_router.backends.ollama_wire import (
    ChatReply,
    EmbedReply,
    StreamLine,
    chat_body,
    tool_calls,
)
from api_router.chat import ChatMessage, ChatOptions, Completion, StreamPiece, Usage
from api_router.chat_tools import FunctionCallDelta, ToolCall, ToolCallDelta
from api_router.embeddings import Embeddings, pack


class _Model(msgspec.Struct):
    name: str


class _ModelList(msgspec.Struct):
    models: list[_Model] = msgspec.field(default_factory=list)


_chat_reply = msgspec.json.Decoder(ChatReply)
_stream_line = msgspec.json.Decoder(StreamLine)
_embed_reply = msgspec.json.Decoder(EmbedReply)
_model_list = msgspec.json.Decoder(_ModelList)


class OllamaBackend:
    name = "ollama"

    def __init__(
        self,
        base_url: str,
        api_key: Callable[[], str | None] | None = None,
        session: aiohttp.ClientSession | None = None,
        connect_timeout_s: float | None = None,
    ) -> None:
        """``api_key``: for an Ollama behind a proxy that asks for one; ``session``,
        ``connect_timeout_s``: see ``JsonHttpClient``."""
        self._http = JsonHttpClient(base_url, "ollama", api_key, session, connect_timeout_s)

    async def chat(
        self,
        model: str,
        messages: Sequence[ChatMessage],
        options: ChatOptions,
        timeout_s: float,
    ) -> Completion:
        refuse_unhonoured(self.name, options.features())
        body = chat_body(model, messages, options, stream=False)
        reply = await self._http.post("/api/chat", body, _chat_reply, timeout_s, model)
        calls = tool_calls(reply.message.tool_calls, options)
        return _completion(
            reply.message.content,
            calls,
            reply.done_reason,
            reply.prompt_eval_count,
            reply.eval_count,
        )

    async def stream(
        self,
        model: str,
        messages: Sequence[ChatMessage],
        options: ChatOptions,
        timeout_s: float,
    ) -> AsyncIterator[StreamPiece]:
        """Text as it comes; tool calls come whole, each as one piece."""
        refuse_unhonoured(self.name, options.features())
        body = chat_body(model, messages, options, stream=True)
        parts: list[str] = []
        calls: list[ToolCall] = []
        async for raw in self._http.post_streaming("/api/chat", body, timeout_s, model):
            line = self._http.decode(_stream_line, raw)
            if line.error is not None:
                raise BackendError("backend_error", f"ollama failed: {line.error}", retryable=False)
            message = line.message
            if message is not None and message.content:
                parts.append(message.content)
                yield message.content
            if message is not None and message.tool_calls:
                room = 1 - len(calls) if options.parallel_tool_calls is False else None
                for call in tool_calls(message.tool_calls, options)[:room]:
                    yield _whole_delta(len(calls), call)
                    calls.append(call)
            if line.done:
                yield _completion(
                    "".join(parts),
                    calls,
                    line.done_reason,
                    line.prompt_eval_count,
                    line.eval_count,
                )
                return
        raise BackendError("backend_error", "ollama ended the stream early", retryable=False)

    async def embed(
        self, model: str, inputs: Sequence[str], dimensions: int | None, timeout_s: float
    ) -> Embeddings:
        body: dict[str, object] = {"model": model, "input": list(inputs)}
        if dimensions is not None:
            body["dimensions"] = dimensions
        reply = await self._http.post("/api/embed", body, _embed_reply, timeout_s, model)
        vectors = checked_vectors("ollama", reply.embeddings, len(inputs), dimensions)
        return Embeddings([pack(v) for v in vectors], Usage(reply.prompt_eval_count, 0))

    async def inventory(self) -> ModelInventory:
        tags = await self._http.get("/api/tags", _model_list, INVENTORY_TIMEOUT_S)
        running = await self._http.get("/api/ps", _model_list, INVENTORY_TIMEOUT_S)
        return ModelInventory(
            available=[m.name for m in tags.models], loaded=[m.name for m in running.models]
        )

    async def aclose(self) -> None:
        await self._http.aclose()


def _completion(
    content: str, calls: list[ToolCall], done_reason: str, prompt: int, generated: int
) -> Completion:
    # Ollama says "stop" when it stops to call tools; OpenAI's word is "tool_calls".
    return Completion(
        message=ChatMessage("assistant", content, tool_calls=calls or None),
        finish_reason="tool_calls" if calls else done_reason,
        usage=Usage(prompt, generated),
    )


def _whole_delta(index: int, call: ToolCall) -> ToolCallDelta:
    function = FunctionCallDelta(call.function.name, call.function.arguments)
    return ToolCallDelta(index, call.id, "function", function)
