"""The official ``openai`` SDK, as an application uses it, through a gateway process and
real workers of both kinds: tool calling (two turns, whole and streamed with the SDK's
stream helpers), structured output and JSON mode, and the routing of what only some kinds
of node honour."""

from __future__ import annotations

import json
from typing import Any, cast

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam, ChatCompletionToolParam
from pydantic import BaseModel

from tests.support.fleet import BY_KIND, Fleet

KINDS = sorted(BY_KIND)
ASK = "weather in Paris"
WEATHER: ChatCompletionToolParam = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Today's weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


class GetWeather(BaseModel):
    city: str


class Forecast(BaseModel):
    city: str
    days: int


def user(text: str = ASK) -> list[ChatCompletionMessageParam]:
    return [{"role": "user", "content": text}]


@pytest.mark.parametrize("kind", KINDS)
async def test_a_two_turn_tool_exchange(fleet: Fleet, kind: str) -> None:
    messages = user()
    async with fleet.client() as client:
        first = await client.chat.completions.create(
            model=BY_KIND[kind], messages=messages, tools=[WEATHER]
        )
        (choice,) = first.choices
        assert choice.finish_reason == "tool_calls"
        assert choice.message.content is None
        (call,) = choice.message.tool_calls or []
        assert call.type == "function" and call.id.startswith("call_")
        assert call.function.name == "get_weather"
        assert json.loads(call.function.arguments) == {"city": ASK}
        # The application runs the tool and sends the result back, as the SDK's docs do.
        messages.append(cast(ChatCompletionMessageParam, choice.message))
        messages.append({"role": "tool", "tool_call_id": call.id, "content": "sunny, 21 C"})
        second = await client.chat.completions.create(
            model=BY_KIND[kind], messages=messages, tools=[WEATHER]
        )
    assert second.choices[0].finish_reason == "stop"
    assert second.choices[0].message.content == f"fake {kind} says: the tools said sunny, 21 C"
    assert second.choices[0].message.tool_calls is None
    sent = fleet.backend_of(kind).chats[-1]["messages"]
    if kind == "ollama":  # mapped: arguments as an object, the result named by its function
        assert sent[1]["tool_calls"] == [
            {"function": {"name": "get_weather", "arguments": {"city": ASK}}}
        ]
        assert sent[2] == {"role": "tool", "content": "sunny, 21 C", "tool_name": "get_weather"}
    else:  # passed as OpenAI spells it
        assert sent[1]["tool_calls"][0]["id"] == call.id
        assert sent[2] == {"role": "tool", "content": "sunny, 21 C", "tool_call_id": call.id}
    assert first.usage is not None and first.usage.completion_tokens > 0
    record = await fleet.audit_record(second.id)
    assert (record["operation"], record["node_id"]) == ("chat", f"node-{kind}")
    assert second.usage is not None
    assert (record["prompt_tokens"], record["completion_tokens"]) == (
        second.usage.prompt_tokens,
        second.usage.completion_tokens,
    )


@pytest.mark.parametrize("kind", KINDS)
async def test_the_sdk_stream_helper_assembles_the_streamed_tool_call(
    fleet: Fleet, kind: str
) -> None:
    arguments_done: list[tuple[str, str]] = []
    async with fleet.client() as client:
        async with client.chat.completions.stream(
            model=BY_KIND[kind],
            messages=user(),
            tools=[openai.pydantic_function_tool(GetWeather)],
        ) as stream:
            async for event in stream:
                if event.type == "tool_calls.function.arguments.done":
                    arguments_done.append((event.name, event.arguments))
            final = await stream.get_final_completion()
    (choice,) = final.choices
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls or []
    assert call.function.name == "GetWeather" and call.id
    assert call.function.parsed_arguments == GetWeather(city=ASK)
    ((name, arguments),) = arguments_done
    assert (name, json.loads(arguments)) == ("GetWeather", {"city": ASK})
    assert fleet.backend_of(kind).chats[-1]["stream"] is True


@pytest.mark.parametrize("kind", KINDS)
async def test_structured_output_follows_the_schema(fleet: Fleet, kind: str) -> None:
    async with fleet.client() as client:
        completion = await client.chat.completions.parse(
            model=BY_KIND[kind], messages=user("three days in Oslo"), response_format=Forecast
        )
    assert completion.choices[0].message.parsed == Forecast(city="three days in Oslo", days=4)
    sent = fleet.backend_of(kind).chats[-1]
    schema = Forecast.model_json_schema()
    if kind == "ollama":  # mapped to Ollama's `format`
        assert sent["format"]["properties"] == schema["properties"]
    else:
        assert sent["response_format"]["type"] == "json_schema"
        assert sent["response_format"]["json_schema"]["name"] == "Forecast"
        assert sent["response_format"]["json_schema"]["strict"] is True


@pytest.mark.parametrize("kind", KINDS)
async def test_json_mode_streams_a_json_object(fleet: Fleet, kind: str) -> None:
    async with fleet.client() as client:
        stream = await client.chat.completions.create(
            model=BY_KIND[kind],
            messages=user("a json please"),
            response_format={"type": "json_object"},
            stream=True,
        )
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert json.loads(text) == {"answer": "a json please"}
    sent = fleet.backend_of(kind).chats[-1]
    assert sent.get("format") == "json" if kind == "ollama" else sent["response_format"]


async def test_what_only_some_kinds_honour_goes_to_a_node_of_that_kind(fleet: Fleet) -> None:
    """``shared`` is on both nodes: logit_bias and a forced tool call go to the
    OpenAI-compatible one; on ``llama3.2`` (Ollama only) they are refused, by name."""
    asks: list[dict[str, Any]] = [
        {"logit_bias": {"50256": -100}, "presence_penalty": 0.5},
        {"tools": [WEATHER], "tool_choice": "required"},
    ]
    async with fleet.client() as client:
        for extra in asks:
            for _ in range(3):  # random routing would send some to node-ollama
                raw = await client.chat.completions.with_raw_response.create(
                    model="shared", messages=user(), **extra
                )
                assert raw.headers["x-route-node"] == "node-openai"
        assert fleet.openai_server.chats[-4]["logit_bias"] == {"50256": -100}
        assert fleet.openai_server.chats[-1]["tool_choice"] == "required"
        refused = []
        for extra, param in zip(asks, ("logit_bias", "tool_choice"), strict=True):
            with pytest.raises(openai.BadRequestError) as raised:
                await client.chat.completions.create(model="llama3.2", messages=user(), **extra)
            refused.append(raised.value)
            assert (raised.value.code, raised.value.param) == ("unsupported_parameter", param)
    assert [cast(dict[str, Any], error.body)["message"] for error in refused] == [
        "logit_bias is not supported by the nodes serving model 'llama3.2' (ollama): "
        "Ollama has no logit bias",
        "tool_choice \"required\" is not supported by the nodes serving model 'llama3.2' "
        "(ollama): Ollama cannot be made to call a tool",
    ]
    # What Ollama honours is mapped into its options, never dropped.
    async with fleet.client() as client:
        await client.chat.completions.create(
            model="llama3.2", messages=user(), presence_penalty=0.5, frequency_penalty=-0.5, seed=3
        )
    options = fleet.ollama_server.chats[-1]["options"]
    assert options == {"presence_penalty": 0.5, "frequency_penalty": -0.5, "seed": 3}


async def test_parallel_tool_calls_false_keeps_one_call_on_either_kind(fleet: Fleet) -> None:
    second: ChatCompletionToolParam = {
        "type": "function",
        "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}},
    }
    async with fleet.client() as client:
        for model in ("llama3.2", "gpt-fake"):
            both = await client.chat.completions.create(
                model=model, messages=user(), tools=[WEATHER, second]
            )
            one = await client.chat.completions.create(
                model=model, messages=user(), tools=[WEATHER, second], parallel_tool_calls=False
            )
            names = [
                c.function.name
                for c in both.choices[0].message.tool_calls or []
                if c.type == "function"
            ]
            assert names == ["get_weather", "get_time"]
            assert len(one.choices[0].message.tool_calls or []) == 1
    # Passed to the OpenAI-compatible server; Ollama cannot be told, so the gateway's
    # adapter keeps the first call.
    assert fleet.openai_server.chats[-1]["parallel_tool_calls"] is False
    assert "parallel_tool_calls" not in fleet.ollama_server.chats[-1]


async def test_the_native_api_carries_tools_whole_and_streamed(fleet: Fleet) -> None:
    body = {
        "model": "llama3.2",
        "messages": [{"role": "user", "content": ASK}],
        "options": {"tools": [WEATHER], "response_format": {"type": "text"}},
    }
    async with fleet.http() as http:
        whole = await http.post("/v1/inference", json=body)
        streamed = await http.post("/v1/inference", json={**body, "stream": True})
    assert whole.status_code == 200, whole.text
    answer = whole.json()
    assert answer["finish_reason"] == "tool_calls"
    (call,) = answer["message"]["tool_calls"]
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": ASK}
    events = [line for line in streamed.text.splitlines() if line.startswith("data: ")]
    chunks = [json.loads(line[6:]) for line in events[:-1]]
    (piece,) = [c["tool_calls"][0] for c in chunks if "tool_calls" in c]
    assert (piece["index"], piece["function"]["name"]) == (0, "get_weather")
    assert json.loads(events[-1][6:])["finish_reason"] == "tool_calls"
