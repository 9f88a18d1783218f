"""The built-in mock backend: deterministic, honest about being a mock."""

from __future__ import annotations

import time

import pytest

from api_router.backends.base import BackendError
from api_router.backends.mock import MockBackend
from api_router.chat import ChatMessage, ChatOptions

MESSAGES = [ChatMessage("system", "be brief"), ChatMessage("user", "one two three")]


async def test_the_same_conversation_gets_the_same_answer() -> None:
    backend = MockBackend(["mock"])
    first = await backend.chat("mock", MESSAGES, ChatOptions(), 5)
    second = await backend.chat("mock", MESSAGES, ChatOptions(), 5)
    assert first == second
    assert first.message.content == "mock reply from mock: one two three"
    assert (first.usage.prompt_tokens, first.usage.completion_tokens) == (5, 7)
    assert first.finish_reason == "stop"
    assert first.metadata["mock"] == "true"


async def test_max_tokens_cuts_the_answer_with_finish_reason_length() -> None:
    result = await MockBackend(["mock"]).chat("mock", MESSAGES, ChatOptions(max_tokens=3), 5)
    assert result.message.content == "mock reply from"
    assert (result.usage.completion_tokens, result.finish_reason) == (3, "length")


async def test_latency_and_tokens_per_second_are_honoured() -> None:
    backend = MockBackend(["mock"], latency_s=0.05, tokens_per_second=100)
    started = time.perf_counter()
    await backend.chat("mock", MESSAGES, ChatOptions(max_tokens=5), 5)
    assert time.perf_counter() - started >= 0.05 + 5 / 100


async def test_a_reply_slower_than_the_timeout_is_a_timeout_error() -> None:
    with pytest.raises(BackendError) as caught:
        await MockBackend(["mock"], latency_s=1.0).chat("mock", MESSAGES, ChatOptions(), 0.05)
    assert (caught.value.reason, caught.value.retryable) == ("backend_timeout", True)


async def test_other_models_are_not_served() -> None:
    backend = MockBackend(["a", "b"])
    assert (await backend.inventory()).available == ["a", "b"]
    with pytest.raises(BackendError) as caught:
        await backend.chat("c", MESSAGES, ChatOptions(), 5)
    assert caught.value.reason == "model_not_found"


async def test_streaming_gives_the_same_answer_word_by_word() -> None:
    backend = MockBackend(["mock"])
    pieces = [piece async for piece in backend.stream("mock", MESSAGES, ChatOptions(), 5)]
    whole = await backend.chat("mock", MESSAGES, ChatOptions(), 5)
    *texts, last = pieces
    assert texts == ["mock", " reply", " from", " mock:", " one", " two", " three"]
    assert last == whole
