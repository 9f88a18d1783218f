"""Decoding OpenAI chat requests: what is honoured, ignored, or refused by name."""

from __future__ import annotations

import json
from typing import Any

import pytest

from api_router.api.public.openai_contract import decode_chat_request, finish_reason
from api_router.chat import ChatMessage, ChatOptions
from api_router.errors import ApiError


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
        body(temperature=0.3, top_p=0.9, max_tokens=10, stop="END", seed=4)
    )
    assert request.options() == ChatOptions(
        temperature=0.3, top_p=0.9, max_tokens=10, stop=["END"], seed=4
    )


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
    assert [m.to_chat() for m in request.messages] == [
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
        {"parallel_tool_calls": False},
        {"n": 1},
        {"frequency_penalty": 0},
        {"presence_penalty": 0.0},
        {"logprobs": False},
        {"response_format": {"type": "text"}},
    ],
)
def test_parameters_that_cannot_change_the_answer_are_accepted(ignored: dict[str, Any]) -> None:
    assert decode_chat_request(body(**ignored)).model == "m"


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"tools": []}, "tools"),
        ({"tool_choice": "auto"}, "tool_choice"),
        ({"logit_bias": {"1": 2}}, "logit_bias"),
        ({"top_logprobs": 2}, "top_logprobs"),
        ({"n": 2}, "n"),
        ({"frequency_penalty": 0.5}, "frequency_penalty"),
        ({"presence_penalty": -1}, "presence_penalty"),
        ({"logprobs": True}, "logprobs"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        (
            {"stream": True, "stream_options": {"include_obfuscation": True}},
            "stream_options.include_obfuscation",
        ),
        (
            {"messages": [{"role": "assistant", "content": "x", "tool_calls": []}]},
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


def test_a_wrong_value_is_invalid_request_naming_the_field() -> None:
    error = refusal(body(temperature=3))
    assert (error.code, error.param) == ("invalid_request", "temperature")


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
