"""The official ``openai`` package, given only ``base_url`` and ``api_key``, against a
gateway process on uvicorn with a real worker and the fake Ollama behind it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.support.fake_ollama import FakeOllama, fake_reply
from tests.support.stack import Stack

PROMPT: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello sdk"}]
EXPECTED = fake_reply([{"role": "user", "content": "hello sdk"}])


@dataclass
class Served:
    url: str
    key: str

    def client(self, key: str | None = None) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=f"{self.url}/v1", api_key=key or self.key)


@pytest.fixture
async def served(stack: Stack) -> AsyncIterator[Served]:
    stack.worker("node-a")
    gateway = stack.gateway_process()
    yield Served(gateway.url, await stack.create_key())


async def test_a_completion(served: Served, fake_ollama: FakeOllama) -> None:
    async with served.client() as client:
        completion = await client.chat.completions.create(
            model="llama3.2", messages=PROMPT, max_tokens=50, temperature=0.1
        )
    assert completion.object == "chat.completion"
    assert completion.id.startswith("req_")
    assert completion.model == "llama3.2"
    (choice,) = completion.choices
    assert (choice.index, choice.message.role) == (0, "assistant")
    assert choice.message.content == EXPECTED
    assert choice.finish_reason == "stop"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (
        2,
        len(EXPECTED.split()),
    )
    assert completion.usage.total_tokens == 2 + len(EXPECTED.split())
    assert fake_ollama.chats[-1]["options"] == {"num_predict": 50, "temperature": 0.1}


async def test_a_streamed_completion_with_usage(served: Served, fake_ollama: FakeOllama) -> None:
    fake_ollama.chunk_delay_s = 0.01  # word by word, as a model produces them
    async with served.client() as client:
        stream = await client.chat.completions.create(
            model="llama3.2",
            messages=PROMPT,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
    texts = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert "".join(texts) == EXPECTED
    assert len(texts) > 1
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    usage = chunks[-1].usage
    assert chunks[-1].choices == [] and usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens) == (2, len(EXPECTED.split()))


async def test_a_streamed_completion_without_usage_has_none(served: Served) -> None:
    async with served.client() as client:
        stream = await client.chat.completions.create(
            model="llama3.2", messages=PROMPT, stream=True
        )
        chunks = [chunk async for chunk in stream]
    assert all(c.usage is None for c in chunks)
    assert all(c.choices for c in chunks)


async def test_the_model_list(served: Served) -> None:
    async with served.client() as client:
        page = await client.models.list()
    assert sorted(m.id for m in page.data) == ["llama3.2", "llama3.2:latest", "qwen2.5:7b"]
    assert {m.object for m in page.data} == {"model"}


async def test_a_bad_key_raises_authentication_error(served: Served) -> None:
    async with served.client("ark_kaaaaaaaaaaaa_" + "a" * 32) as client:
        with pytest.raises(openai.AuthenticationError) as raised:
            await client.chat.completions.create(model="llama3.2", messages=PROMPT)
    assert raised.value.status_code == 401
    assert raised.value.code == "invalid_api_key"
    assert raised.value.type == "authentication_error"


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"n": 2}, "n"),
        ({"logprobs": True}, "logprobs"),
        ({"functions": [{"name": "f"}]}, "functions"),
        # Ollama nodes alone serve the model: what Ollama cannot do is refused, by name.
        ({"logit_bias": {"1": 5}}, "logit_bias"),
    ],
)
async def test_an_unsupported_parameter_is_400_naming_it(
    served: Served, extra: dict[str, object], param: str
) -> None:
    async with served.client() as client:
        with pytest.raises(openai.BadRequestError) as raised:
            await client.chat.completions.create(
                model="llama3.2", messages=PROMPT, extra_body=extra
            )
    assert raised.value.code == "unsupported_parameter"
    assert raised.value.param == param


async def test_an_unknown_model_is_404(served: Served) -> None:
    async with served.client() as client:
        with pytest.raises(openai.NotFoundError) as raised:
            await client.chat.completions.create(model="nope", messages=PROMPT)
    assert raised.value.code == "model_not_found"
