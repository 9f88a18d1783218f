"""OpenAI-compatible servers (vLLM, llama.cpp server, LM Studio): ``/v1/chat/completions``."""

from __future__ import annotations

from collections.abc import Sequence

import httpx
import msgspec

from api_router.backends.base import BackendError, ModelInventory
from api_router.backends.http_errors import backend_errors
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


class _Model(msgspec.Struct):
    id: str


class _ModelList(msgspec.Struct):
    data: list[_Model] = msgspec.field(default_factory=list)


_chat_decoder = msgspec.json.Decoder(_ChatReply)
_models_decoder = msgspec.json.Decoder(_ModelList)


class OpenAIBackend:
    name = "openai"

    def __init__(self, base_url: str, client: httpx.AsyncClient | None = None) -> None:
        # Accept both "http://host:8000" and "http://host:8000/v1".
        root = base_url.rstrip("/").removesuffix("/v1")
        self._client = client or httpx.AsyncClient(base_url=root)

    async def chat(
        self,
        model: str,
        messages: Sequence[ChatMessage],
        options: ChatOptions,
        timeout_s: float,
    ) -> Completion:
        body = {"model": model, "messages": messages, "stream": False,
                **msgspec.structs.asdict(options)}  # fmt: skip
        body = {name: value for name, value in body.items() if value is not None}
        with backend_errors("openai backend", model):
            response = await self._client.post(
                "/v1/chat/completions", content=msgspec.json.encode(body), timeout=timeout_s,
                headers={"content-type": "application/json"},
            )  # fmt: skip
            response.raise_for_status()
            reply = _chat_decoder.decode(response.content)
        if not reply.choices:
            raise BackendError("backend_error", "openai backend sent no choices", retryable=False)
        choice = reply.choices[0]
        return Completion(
            message=ChatMessage("assistant", choice.message.content or ""),
            finish_reason=choice.finish_reason or "stop",
            usage=Usage(reply.usage.prompt_tokens, reply.usage.completion_tokens),
        )

    async def inventory(self) -> ModelInventory:
        with backend_errors("openai backend"):
            response = await self._client.get("/v1/models", timeout=5.0)
            response.raise_for_status()
            models = [m.id for m in _models_decoder.decode(response.content).data]
        # A server of this kind holds what it lists.
        return ModelInventory(available=models, loaded=models)

    async def aclose(self) -> None:
        await self._client.aclose()
