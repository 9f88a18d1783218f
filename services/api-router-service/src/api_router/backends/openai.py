"""OpenAI-compatible servers (vLLM, llama.cpp server, LM Studio): ``/v1/chat/completions``
and ``/v1/embeddings``, everything passed as OpenAI names it. A key, when the server needs
one, comes from the worker's configuration (``backends/api_key.py``), never from a job."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence

import aiohttp
import msgspec

from api_router.backends.base import (
    INVENTORY_TIMEOUT_S,
    BackendError,
    ModelInventory,
    checked_vectors,
)
from api_router.backends.http_client import JsonHttpClient
from api_router.backends.openai_wire import (
    ChatReply,
    EmbeddingList,
    ReplyUsage,
    StreamChunk,
    ToolCallAssembly,
)
from api_router.chat import ChatMessage, ChatOptions, Completion, StreamPiece, Usage
from api_router.embeddings import Embeddings, pack


class _Model(msgspec.Struct):
    id: str


class _ModelList(msgspec.Struct):
    data: list[_Model] = msgspec.field(default_factory=list)


_chat_reply = msgspec.json.Decoder(ChatReply)
_stream_chunk = msgspec.json.Decoder(StreamChunk)
_embedding_list = msgspec.json.Decoder(EmbeddingList)
_model_list = msgspec.json.Decoder(_ModelList)


class OpenAIBackend:
    name = "openai"

    def __init__(
        self,
        base_url: str,
        api_key: Callable[[], str | None] | None = None,
        session: aiohttp.ClientSession | None = None,
        connect_timeout_s: float | None = None,
    ) -> None:
        """``session``, ``connect_timeout_s``: see ``JsonHttpClient``."""
        # Accept both "http://host:8000" and "http://host:8000/v1".
        base = base_url.rstrip("/").removesuffix("/v1")
        self._http = JsonHttpClient(base, "openai backend", api_key, session, connect_timeout_s)

    def _body(
        self, model: str, messages: Sequence[ChatMessage], options: ChatOptions, stream: bool
    ) -> dict[str, object]:
        sampling = {k: v for k, v in msgspec.structs.asdict(options).items() if v is not None}
        if not options.tools:  # an empty list: some servers refuse it
            sampling.pop("tools", None)
        body: dict[str, object] = {"model": model, "messages": messages, "stream": stream}
        if stream:
            body["stream_options"] = {"include_usage": True}
        return {**body, **sampling}

    async def chat(
        self,
        model: str,
        messages: Sequence[ChatMessage],
        options: ChatOptions,
        timeout_s: float,
    ) -> Completion:
        body = self._body(model, messages, options, stream=False)
        reply = await self._http.post("/v1/chat/completions", body, _chat_reply, timeout_s, model)
        if not reply.choices:
            raise BackendError("backend_error", "openai backend sent no choices", retryable=False)
        choice = reply.choices[0]
        calls = [call.to_call(i) for i, call in enumerate(choice.message.tool_calls or ())]
        return Completion(
            message=ChatMessage("assistant", choice.message.content or "", calls or None),
            finish_reason=choice.finish_reason or "stop",
            usage=Usage(reply.usage.prompt_tokens, reply.usage.completion_tokens),
        )

    async def stream(
        self,
        model: str,
        messages: Sequence[ChatMessage],
        options: ChatOptions,
        timeout_s: float,
    ) -> AsyncIterator[StreamPiece]:
        body = self._body(model, messages, options, stream=True)
        parts: list[str] = []
        calls = ToolCallAssembly()
        pieces = 0
        finish_reason = "stop"
        usage: ReplyUsage | None = None
        lines = self._http.post_streaming("/v1/chat/completions", body, timeout_s, model)
        async for line in lines:
            if not line.startswith(b"data:"):
                continue  # comments and other SSE fields
            data = line[5:].strip()
            if data == b"[DONE]":
                break
            chunk = self._http.decode(_stream_chunk, data)
            usage = chunk.usage or usage
            for choice in chunk.choices[:1]:
                finish_reason = choice.finish_reason or finish_reason
                if choice.delta.content:
                    parts.append(choice.delta.content)
                    pieces += 1
                    yield choice.delta.content
                for delta in choice.delta.tool_calls or ():
                    calls.add(delta)
                    pieces += 1
                    yield delta
        else:
            raise BackendError(
                "backend_error", "openai backend ended the stream early", retryable=False
            )
        # Servers that ignore stream_options send no usage: count the pieces instead.
        usage = usage or ReplyUsage(0, pieces)
        yield Completion(
            message=ChatMessage("assistant", "".join(parts), calls.calls() or None),
            finish_reason=finish_reason,
            usage=Usage(usage.prompt_tokens, usage.completion_tokens),
        )

    async def embed(
        self, model: str, inputs: Sequence[str], dimensions: int | None, timeout_s: float
    ) -> Embeddings:
        body: dict[str, object] = {
            "model": model,
            "input": list(inputs),
            "encoding_format": "float",
        }
        if dimensions is not None:
            body["dimensions"] = dimensions
        reply = await self._http.post("/v1/embeddings", body, _embedding_list, timeout_s, model)
        ordered = [item.embedding for item in sorted(reply.data, key=lambda item: item.index)]
        vectors = checked_vectors("openai backend", ordered, len(inputs), dimensions)
        return Embeddings([pack(v) for v in vectors], Usage(reply.usage.prompt_tokens, 0))

    async def inventory(self) -> ModelInventory:
        listing = await self._http.get("/v1/models", _model_list, INVENTORY_TIMEOUT_S)
        models = [m.id for m in listing.data]
        # A server of this kind holds what it lists.
        return ModelInventory(available=models, loaded=models)

    async def aclose(self) -> None:
        await self._http.aclose()
