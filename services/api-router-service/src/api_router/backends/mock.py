"""A deterministic built-in backend for local runs and load tests (no model behind it)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Sequence

from api_router.backends.base import BackendError, ModelInventory, refuse_unhonoured
from api_router.chat import ChatMessage, ChatOptions, Completion, Usage
from api_router.embeddings import Embeddings, pack

DEFAULT_REPLY_TOKENS = 16
DEFAULT_DIMENSIONS = 8


class MockBackend:
    name = "mock"

    def __init__(
        self, models: Sequence[str], latency_s: float = 0.0, tokens_per_second: float = 0.0
    ) -> None:
        self._models = list(models)
        self._latency_s = latency_s
        self._tokens_per_second = tokens_per_second

    async def chat(
        self,
        model: str,
        messages: Sequence[ChatMessage],
        options: ChatOptions,
        timeout_s: float,
    ) -> Completion:
        words, completion = self._answer(model, messages, options)
        delay = self._latency_s
        if self._tokens_per_second > 0:
            delay += len(words) / self._tokens_per_second
        await self._sleep(delay, timeout_s)
        return completion

    async def stream(
        self,
        model: str,
        messages: Sequence[ChatMessage],
        options: ChatOptions,
        timeout_s: float,
    ) -> AsyncIterator[str | Completion]:
        """The same answer as ``chat``, one word (token) at a time at the configured rate."""
        words, completion = self._answer(model, messages, options)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        await self._sleep(self._latency_s, timeout_s)
        for i, word in enumerate(words):
            if self._tokens_per_second > 0:
                await self._sleep(1 / self._tokens_per_second, deadline - loop.time())
            yield word if i == 0 else f" {word}"
        yield completion

    async def embed(
        self, model: str, inputs: Sequence[str], dimensions: int | None, timeout_s: float
    ) -> Embeddings:
        """The same vector for the same text: its hash's bytes, scaled into [-1, 1)."""
        self._check_model(model)
        await self._sleep(self._latency_s, timeout_s)
        vectors = [pack(mock_vector(text, dimensions or DEFAULT_DIMENSIONS)) for text in inputs]
        return Embeddings(vectors, Usage(sum(len(text.split()) for text in inputs), 0))

    def _check_model(self, model: str) -> None:
        if model not in self._models:
            raise BackendError("model_not_found", f"mock does not serve {model!r}", retryable=True)

    def _answer(
        self, model: str, messages: Sequence[ChatMessage], options: ChatOptions
    ) -> tuple[list[str], Completion]:
        self._check_model(model)
        refuse_unhonoured(self.name, options.features())
        limit = options.max_tokens or DEFAULT_REPLY_TOKENS
        full = reply_words(model, messages)
        words = full[:limit]
        return words, Completion(
            message=ChatMessage("assistant", " ".join(words)),
            finish_reason="length" if len(full) > limit else "stop",
            usage=Usage(count_tokens(messages), len(words)),
            metadata={"backend": "mock", "mock": "true"},
        )

    @staticmethod
    async def _sleep(delay_s: float, timeout_s: float) -> None:
        if delay_s > timeout_s:
            await asyncio.sleep(max(timeout_s, 0.0))
            raise BackendError("backend_timeout", "mock did not answer in time", retryable=True)
        if delay_s > 0:
            await asyncio.sleep(delay_s)

    async def inventory(self) -> ModelInventory:
        return ModelInventory(available=list(self._models), loaded=list(self._models))

    async def aclose(self) -> None:
        return None


def reply_words(model: str, messages: Sequence[ChatMessage]) -> list[str]:
    """The same reply for the same conversation: a fixed opening, then the last user
    message echoed back (one word = one token)."""
    last_user = next((m.content for m in reversed(messages) if m.role == "user"), "")
    return ["mock", "reply", "from", f"{model}:", *last_user.split()]


def mock_vector(text: str, dimensions: int) -> list[float]:
    digest = hashlib.shake_256(text.encode()).digest(dimensions)
    return [(byte - 128) / 128 for byte in digest]


def count_tokens(messages: Sequence[ChatMessage]) -> int:
    return sum(len(m.content.split()) for m in messages)
