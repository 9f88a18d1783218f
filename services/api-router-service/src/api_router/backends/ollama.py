"""Ollama (``/api/chat``, ``/api/tags``, ``/api/ps``), as on Raspberry-Pi-class nodes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import msgspec

from api_router.backends.base import INVENTORY_TIMEOUT_S, BackendError, ModelInventory
from api_router.backends.http_client import JsonHttpClient
from api_router.chat import ChatMessage, ChatOptions, Completion, Usage


class _ChatReply(msgspec.Struct):
    message: ChatMessage
    done_reason: str = "stop"
    prompt_eval_count: int = 0
    eval_count: int = 0


class _Delta(msgspec.Struct):
    content: str = ""


class _StreamLine(msgspec.Struct):
    """One NDJSON line of a streamed ``/api/chat``; the last has ``done`` and the counts."""

    message: _Delta | None = None
    done: bool = False
    done_reason: str = "stop"
    prompt_eval_count: int = 0
    eval_count: int = 0
    error: str | None = None


class _Model(msgspec.Struct):
    name: str


class _ModelList(msgspec.Struct):
    models: list[_Model] = msgspec.field(default_factory=list)


_chat_reply = msgspec.json.Decoder(_ChatReply)
_stream_line = msgspec.json.Decoder(_StreamLine)
_model_list = msgspec.json.Decoder(_ModelList)


class OllamaBackend:
    name = "ollama"

    def __init__(self, base_url: str) -> None:
        self._http = JsonHttpClient(base_url, "ollama")

    async def chat(
        self,
        model: str,
        messages: Sequence[ChatMessage],
        options: ChatOptions,
        timeout_s: float,
    ) -> Completion:
        body = {
            "model": model,
            "messages": messages,
            "stream": False,
            "options": ollama_options(options),
        }
        reply = await self._http.post("/api/chat", body, _chat_reply, timeout_s, model)
        return Completion(
            message=ChatMessage("assistant", reply.message.content),
            finish_reason=reply.done_reason,
            usage=Usage(reply.prompt_eval_count, reply.eval_count),
        )

    async def stream(
        self,
        model: str,
        messages: Sequence[ChatMessage],
        options: ChatOptions,
        timeout_s: float,
    ) -> AsyncIterator[str | Completion]:
        body = {
            "model": model,
            "messages": messages,
            "stream": True,
            "options": ollama_options(options),
        }
        parts: list[str] = []
        async for raw in self._http.post_streaming("/api/chat", body, timeout_s, model):
            line = self._http.decode(_stream_line, raw)
            if line.error is not None:
                raise BackendError("backend_error", f"ollama failed: {line.error}", retryable=False)
            if line.message is not None and line.message.content:
                parts.append(line.message.content)
                yield line.message.content
            if line.done:
                yield Completion(
                    message=ChatMessage("assistant", "".join(parts)),
                    finish_reason=line.done_reason,
                    usage=Usage(line.prompt_eval_count, line.eval_count),
                )
                return
        raise BackendError("backend_error", "ollama ended the stream early", retryable=False)

    async def inventory(self) -> ModelInventory:
        tags = await self._http.get("/api/tags", _model_list, INVENTORY_TIMEOUT_S)
        running = await self._http.get("/api/ps", _model_list, INVENTORY_TIMEOUT_S)
        return ModelInventory(
            available=[m.name for m in tags.models], loaded=[m.name for m in running.models]
        )

    async def aclose(self) -> None:
        await self._http.aclose()


def ollama_options(options: ChatOptions) -> dict[str, Any]:
    """Our options in Ollama's names (``max_tokens`` is ``num_predict``)."""
    mapped: dict[str, Any] = {
        "temperature": options.temperature,
        "top_p": options.top_p,
        "num_predict": options.max_tokens,
        "stop": options.stop,
        "seed": options.seed,
    }
    return {name: value for name, value in mapped.items() if value is not None}
