"""Decoding OpenAI chat requests: what is honoured, ignored, or refused by name."""

from __future__ import annotations

import json
from typing import Any

import pytest

from api_router.api.public.openai_answers import finish_reason
from api_router.api.public.openai_contract import decode_chat_request
from api_router.chat import ChatMessage, ChatOptions
from api_router.chat_tools import (
    FunctionCall,
    FunctionDefinition,
    JsonSchemaFormat,
    JsonSchemaSpec,
    NamedFunction,
    NamedToolChoice,
    Tool,
    ToolCall,
)
from api_router.errors import ApiError

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def body(**fields: Any) -> bytes:
    return json.dumps(
        {"model": "m", "messages": [{"role": "user", "content": "hi"}], **fields}
    ).encode()


def refusal(content: bytes) -> ApiError:
    with pytest.raises(ApiError) as raised:
        decode_chat_request(content)
    return raised.value


def test_sampling_parameters_become_our_options() -> None:
    request = decode_chat_request(
        body(
            temperature=0.3,
            top_p=0.9,
            max_tokens=10,
            stop="END",
            seed=4,
            presence_penalty=-1.5,
            frequency_penalty=2,
            logit_bias={"50256": -100},
        )
    )
    assert request.options() == ChatOptions(
        temperature=0.3,
        top_p=0.9,
        max_tokens=10,
        stop=["END"],
        seed=4,
        presence_penalty=-1.5,
        frequency_penalty=2,
        logit_bias={"50256": -100},
    )
    assert request.options().features() == {"presence_penalty", "frequency_penalty", "logit_bias"}


def test_tools_tool_choice_and_response_format_become_our_options() -> None:
    request = decode_chat_request(
        body(
            tools=[WEATHER],
            tool_choice={"type": "function", "function": {"name": "get_weather"}},
            parallel_tool_calls=False,
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "w", "schema": {"type": "object"}, "strict": True},
            },
        )
    )
    options = request.options()
    assert options.tools == [
        Tool(
            "function",
            FunctionDefinition(
                "get_weather",
                "The weather in a city",
                {"type": "object", "properties": {"city": {"type": "string"}}},
            ),
        )
    ]
    assert options.tool_choice == NamedToolChoice("function", NamedFunction("get_weather"))
    assert options.response_format == JsonSchemaFormat(
        JsonSchemaSpec("w", schema={"type": "object"}, strict=True)
    )
    assert options.features() == {
        "tools",
        "parallel_tool_calls",
        "tool_choice:function",
        "response_format:json_schema",
    }


def test_a_tool_exchange_becomes_messages_with_calls_and_results() -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    messages = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": [{"type": "text", "text": "ok"}]},
    ]
    request = decode_chat_request(json.dumps({"model": "m", "messages": messages}).encode())
    assert request.chat_messages() == [
        ChatMessage("user", "go"),
        ChatMessage("assistant", "", tool_calls=[ToolCall("call_1", FunctionCall("f", "{}"))]),
        ChatMessage("tool", "ok", tool_call_id="call_1"),
    ]


def test_max_completion_tokens_wins_over_the_older_max_tokens() -> None:
    request = decode_chat_request(body(max_tokens=10, max_completion_tokens=5))
    assert request.options().max_tokens == 5


def test_developer_messages_and_text_parts_become_plain_messages() -> None:
    messages = [
        {"role": "developer", "content": "be brief"},
        {
            "role": "user",
            "content": [{"type": "text", "text": "a "}, {"type": "text", "text": "b"}],
        },
        {"role": "assistant", "content": None},
    ]
    request = decode_chat_request(json.dumps({"model": "m", "messages": messages}).encode())
    assert request.chat_messages() == [
        ChatMessage("system", "be brief"),
        ChatMessage("user", "a b"),
        ChatMessage("assistant", ""),
    ]


@pytest.mark.parametrize(
    "ignored",
    [
        {"user": "u-1"},
        {"store": False},
        {"metadata": {"k": "v"}},
        {"service_tier": "auto"},
        {"safety_identifier": "s"},
        {"prompt_cache_key": "k"},
        {"parallel_tool_calls": False},  # without tools: nothing to call in parallel
        {"tools": []},
        {"tool_choice": "auto"},
        {"n": 1},
        {"logprobs": False},
        {"response_format": {"type": "text"}},
    ],
)
def test_parameters_that_cannot_change_the_answer_are_accepted(ignored: dict[str, Any]) -> None:
    request = decode_chat_request(body(**ignored))
    assert request.options().features() == frozenset()


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"functions": [{"name": "f"}]}, "functions"),
        ({"top_logprobs": 2}, "top_logprobs"),
        ({"n": 2}, "n"),
        ({"logprobs": True}, "logprobs"),
        ({"reasoning_effort": "low"}, "reasoning_effort"),
        ({"tools": [{"type": "custom", "custom": {"name": "x"}}]}, "tools[0].type"),
        (
            {"stream": True, "stream_options": {"include_obfuscation": True}},
            "stream_options.include_obfuscation",
        ),
        (
            {"messages": [{"role": "user", "content": "x", "tool_calls": []}]},
            "messages[0].tool_calls",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
            "messages[0].content[0].type",
        ),
    ],
)
def test_unsupported_parameters_are_refused_by_name(fields: dict[str, Any], param: str) -> None:
    error = refusal(body(**fields))
    assert (error.code, error.param, error.status) == ("unsupported_parameter", param, 400)
    assert param.split(".")[-1].split("[")[0] in error.message


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"temperature": 3}, "temperature"),
        ({"presence_penalty": 2.5}, "presence_penalty"),
        ({"logit_bias": {"token": 1}}, "logit_bias"),
        ({"tools": [{"type": "function", "function": {"name": "a b"}}]}, "tools[0].function.name"),
        ({"tool_choice": "sometimes"}, "tool_choice"),
        ({"response_format": {"type": "xml"}}, "response_format.type"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0]"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
    ],
)
def test_a_wrong_value_is_invalid_request_naming_the_field(
    fields: dict[str, Any], param: str
) -> None:
    error = refusal(body(**fields))
    assert (error.code, error.param) == ("invalid_request", param), error.message


def test_stream_options_without_stream_is_refused() -> None:
    error = refusal(body(stream_options={"include_usage": True}))
    assert (error.code, error.param) == ("invalid_request", "stream_options")


def test_include_usage_is_read_from_stream_options() -> None:
    streamed = decode_chat_request(body(stream=True, stream_options={"include_usage": True}))
    assert streamed.include_usage
    assert not decode_chat_request(body(stream=True)).include_usage


@pytest.mark.parametrize(
    ("ours", "theirs"), [("stop", "stop"), ("length", "length"), ("load", "stop"), ("", "stop")]
)
def test_finish_reasons_are_spelled_the_openai_way(ours: str, theirs: str) -> None:
    assert finish_reason(ours) == theirs
