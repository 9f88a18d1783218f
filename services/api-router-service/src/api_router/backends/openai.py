"""OpenAI-compatible servers (vLLM, llama.cpp server, LM Studio): ``/v1/chat/completions``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import msgspec

from api_router.backends.base import INVENTORY_TIMEOUT_S, BackendError, ModelInventory
from api_router.backends.http_client import JsonHttpClient
from api_router.chat import ChatMessage, ChatOptions, Completion, Usage


class _Message(msgspec.Struct):
    content: str | None = None


class _Choice(msgspec.Struct):
    message: _Message
    finish_reason: str | None = None


class _Usage(msgspec.Struct):
    prompt_tokens: int = 0
    completion_tokens: int = 0


class _ChatReply(msgspec.Struct):
    choices: list[_Choice]
    usage: _Usage = msgspec.field(default_factory=_Usage)


class _Delta(msgspec.Struct):
    content: str | None = None


class _StreamChoice(msgspec.Struct):
    delta: _Delta = msgspec.field(default_factory=_Delta)
    finish_reason: str | None = None


class _StreamChunk(msgspec.Struct):
    choices: list[_StreamChoice] = msgspec.field(default_factory=list)
    usage: _Usage | None = None


class _Model(msgspec.Struct):
    id: str


class _ModelList(msgspec.Struct):
    data: list[_Model] = msgspec.field(default_factory=list)


_chat_reply = msgspec.json.Decoder(_ChatReply)
_stream_chunk = msgspec.json.Decoder(_StreamChunk)
_model_list = msgspec.json.Decoder(_ModelList)


class OpenAIBackend:
    name = "openai"

    def __init__(self, base_url: str) -> None:
        # Accept both "http://host:8000" and "http://host:8000/v1".
        self._http = JsonHttpClient(base_url.rstrip("/").removesuffix("/v1"), "openai backend")

    def _body(
        self, model: str, messages: Sequence[ChatMessage], options: ChatOptions, stream: bool
    ) -> dict[str, object]:
        sampling = {k: v for k, v in msgspec.structs.asdict(options).items() if v is not None}
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
        return Completion(
            message=ChatMessage("assistant", choice.message.content or ""),
            finish_reason=choice.finish_reason or "stop",
            usage=Usage(reply.usage.prompt_tokens, reply.usage.completion_tokens),
        )

    async def stream(
        self,
        model: str,
        messages: Sequence[ChatMessage],
        options: ChatOptions,
        timeout_s: float,
    ) -> AsyncIterator[str | Completion]:
        body = self._body(model, messages, options, stream=True)
        parts: list[str] = []
        finish_reason = "stop"
        usage: _Usage | None = None
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
                    yield choice.delta.content
        else:
            raise BackendError(
                "backend_error", "openai backend ended the stream early", retryable=False
            )
        # Servers that ignore stream_options send no usage: count the pieces instead.
        usage = usage or _Usage(0, len(parts))
        yield Completion(
            message=ChatMessage("assistant", "".join(parts)),
            finish_reason=finish_reason,
            usage=Usage(usage.prompt_tokens, usage.completion_tokens),
        )

    async def inventory(self) -> ModelInventory:
        listing = await self._http.get("/v1/models", _model_list, INVENTORY_TIMEOUT_S)
        models = [m.id for m in listing.data]
        # A server of this kind holds what it lists.
        return ModelInventory(available=models, loaded=models)

    async def aclose(self) -> None:
        await self._http.aclose()
