"""Ollama (``/api/chat``, ``/api/tags``, ``/api/ps``), as on Raspberry-Pi-class nodes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from api_router.backends.base import INVENTORY_TIMEOUT_S, ModelInventory
from api_router.backends.http_client import JsonHttpClient
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


_chat_reply = msgspec.json.Decoder(_ChatReply)
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
        body = {"model": model, "messages": messages, "stream": False,
                "options": ollama_options(options)}  # fmt: skip
        reply = await self._http.post("/api/chat", body, _chat_reply, timeout_s, model)
        return Completion(
            message=ChatMessage("assistant", reply.message.content),
            finish_reason=reply.done_reason,
            usage=Usage(reply.prompt_eval_count, reply.eval_count),
        )

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
