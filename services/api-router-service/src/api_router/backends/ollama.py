"""Ollama (``/api/chat``, ``/api/tags``, ``/api/ps``), as on Raspberry-Pi-class nodes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx
import msgspec

from api_router.backends.base import ModelInventory
from api_router.backends.http_errors import backend_errors
from api_router.chat import ChatMessage, ChatOptions, Completion, Usage


class _ChatReply(msgspec.Struct):
    message: ChatMessage
    done_reason: str = "stop"
    prompt_eval_count: int = 0
    eval_count: int = 0


class _Model(msgspec.Struct):
    name: str


class _ModelList(msgspec.Struct):
    models: list[_Model] = msgspec.field(default_factory=list)


_chat_decoder = msgspec.json.Decoder(_ChatReply)
_models_decoder = msgspec.json.Decoder(_ModelList)


class OllamaBackend:
    name = "ollama"

    def __init__(self, base_url: str, client: httpx.AsyncClient | None = None) -> None:
        self._client = client or httpx.AsyncClient(base_url=base_url.rstrip("/"))

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
        with backend_errors("ollama", model):
            response = await self._client.post(
                "/api/chat", content=msgspec.json.encode(body), timeout=timeout_s,
                headers={"content-type": "application/json"},
            )  # fmt: skip
            response.raise_for_status()
            reply = _chat_decoder.decode(response.content)
        return Completion(
            message=ChatMessage("assistant", reply.message.content),
            finish_reason=reply.done_reason,
            usage=Usage(reply.prompt_eval_count, reply.eval_count),
        )

    async def inventory(self) -> ModelInventory:
        with backend_errors("ollama"):
            tags = await self._client.get("/api/tags", timeout=5.0)
            tags.raise_for_status()
            running = await self._client.get("/api/ps", timeout=5.0)
            running.raise_for_status()
            available = [m.name for m in _models_decoder.decode(tags.content).models]
            loaded = [m.name for m in _models_decoder.decode(running.content).models]
        return ModelInventory(available, loaded)

    async def aclose(self) -> None:
        await self._client.aclose()


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
