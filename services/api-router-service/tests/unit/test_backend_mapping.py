"""The pure parts of tools, JSON output and embeddings: what a request asks of a node, how
Ollama's adapter maps OpenAI's shapes, how streamed tool calls are put together, the
vectors' packing and the token estimates."""

from __future__ import annotations

from pathlib import Path

import pytest

from api_router.backends.api_key import ApiKeyError, ApiKeyFile
from api_router.backends.base import BackendError, checked_vectors
from api_router.backends.capabilities import honours, refusal
from api_router.backends.ollama_wire import OllamaFunction, OllamaToolCall, chat_body, tool_calls
from api_router.backends.openai_wire import ToolCallAssembly
from api_router.chat import ChatMessage, ChatOptions, history_features
from api_router.chat_tools import (
    FunctionCall,
    FunctionCallDelta,
    FunctionDefinition,
    JsonObjectFormat,
    JsonSchemaFormat,
    JsonSchemaSpec,
    Tool,
    ToolCall,
    ToolCallDelta,
)
from api_router.dispatch.protocol import EmbedPayload
from api_router.embeddings import pack, unpack
from api_router.limiter.token_estimate import estimate_prompt_tokens, estimate_text_tokens

TOOL = Tool("function", FunctionDefinition("get_weather", parameters={"type": "object"}))
CALL = ToolCall("call_1", FunctionCall("get_weather", '{"city": "Oslo"}'))


@pytest.mark.parametrize(
    ("kind", "options", "ok"),
    [
        ("ollama", ChatOptions(tools=[TOOL], presence_penalty=1), True),
        ("ollama", ChatOptions(tools=[TOOL], tool_choice="required"), False),
        ("ollama", ChatOptions(logit_bias={"1": 2}), False),
        ("openai", ChatOptions(tools=[TOOL], tool_choice="required", logit_bias={"1": 2}), True),
        ("mock", ChatOptions(frequency_penalty=1), True),
        ("mock", ChatOptions(response_format=JsonObjectFormat()), False),
        ("", ChatOptions(presence_penalty=1), False),  # a worker of before protocol v2
        ("", ChatOptions(temperature=1, tools=[]), True),
    ],
)
def test_which_kind_honours_what(kind: str, options: ChatOptions, ok: bool) -> None:
    assert honours(kind, options.features()) is ok


def test_a_refusal_names_the_parameter_the_kinds_and_why() -> None:
    asked = ChatOptions(tools=[TOOL], tool_choice="required").features()
    error = refusal("llama3.2", asked, ["ollama", "mock"])
    assert (error.code, error.param, error.status) == ("unsupported_parameter", "tool_choice", 400)
    assert error.message == (
        "tool_choice \"required\" is not supported by the nodes serving model 'llama3.2' "
        "(mock, ollama): the mock backend answers only text"
    )
    embeddings = refusal("m", EmbedPayload(["x"]).features(), [""])
    assert embeddings.param == "model"
    assert embeddings.message.startswith("embeddings is not supported")


def test_a_history_of_tool_calls_asks_for_tools_and_text_arguments_for_a_text_taker() -> None:
    answered = [ChatMessage("assistant", "", tool_calls=[CALL])]
    assert history_features(answered) == {"tools"}
    loose = [ChatMessage("assistant", "", [ToolCall("c", FunctionCall("f", "not json"))])]
    assert history_features(loose) == {"tools", "tool_calls:text_arguments"}
    assert history_features([ChatMessage("tool", "42", tool_call_id="c")]) == {"tools"}
    assert history_features([ChatMessage("user", "hi")]) == frozenset()


def test_ollama_gets_arguments_as_objects_results_by_function_and_its_own_names() -> None:
    messages = [
        ChatMessage("user", "weather?"),
        ChatMessage("assistant", "", tool_calls=[CALL]),
        ChatMessage("tool", "sunny", tool_call_id="call_1"),
    ]
    options = ChatOptions(
        tools=[TOOL],
        max_tokens=9,
        response_format=JsonSchemaFormat(JsonSchemaSpec("w", schema={"type": "object"})),
    )
    body = chat_body("m", messages, options, stream=False)
    assert body["messages"][1]["tool_calls"] == [
        {"function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}
    ]
    assert body["messages"][2] == {"role": "tool", "content": "sunny", "tool_name": "get_weather"}
    assert body["tools"] == [TOOL]
    assert (body["format"], body["options"]) == ({"type": "object"}, {"num_predict": 9})
    assert (
        chat_body("m", messages, ChatOptions(response_format=JsonObjectFormat()), True)["format"]
        == "json"
    )
    # tool_choice "none": the model is offered no tools at all.
    assert "tools" not in chat_body(
        "m", messages, ChatOptions(tools=[TOOL], tool_choice="none"), True
    )


def test_ollama_tool_calls_get_ids_and_parallel_false_keeps_the_first() -> None:
    made = [
        OllamaToolCall(OllamaFunction("a", {"x": 1})),
        OllamaToolCall(OllamaFunction("b", {}), id="given"),
    ]
    both = tool_calls(made, ChatOptions())
    assert [(c.function.name, c.function.arguments) for c in both] == [
        ("a", '{"x":1}'),
        ("b", "{}"),
    ]
    assert both[0].id.startswith("call_") and both[1].id == "given"
    assert len(tool_calls(made, ChatOptions(parallel_tool_calls=False))) == 1


def test_ollama_refuses_arguments_it_cannot_take() -> None:
    loose = ChatMessage("assistant", "", [ToolCall("c", FunctionCall("f", "[1]"))])
    with pytest.raises(BackendError) as raised:
        chat_body("m", [loose], ChatOptions(), stream=False)
    assert (raised.value.reason, raised.value.retryable) == ("invalid_request", False)


def test_streamed_tool_call_pieces_are_put_together_by_index() -> None:
    assembly = ToolCallAssembly()
    for piece in (
        ToolCallDelta(0, "c0", "function", FunctionCallDelta("f", "")),
        ToolCallDelta(1, "c1", "function", FunctionCallDelta("g", '{"a"')),
        ToolCallDelta(0, function=FunctionCallDelta(arguments='{"x": ')),
        ToolCallDelta(0, function=FunctionCallDelta(arguments="1}")),
        ToolCallDelta(1, function=FunctionCallDelta(arguments=": 2}")),
    ):
        assembly.add(piece)
    assert assembly.calls() == [
        ToolCall("c0", FunctionCall("f", '{"x": 1}')),
        ToolCall("c1", FunctionCall("g", '{"a": 2}')),
    ]


def test_vectors_are_packed_as_little_endian_float32_and_checked() -> None:
    vector = [0.5, -0.25, 1.0, 0.0]
    packed = pack(vector)
    assert packed == "AAAAPwAAgL4AAIA/AAAAAA=="  # what OpenAI's base64 format holds
    assert unpack(packed) == vector
    assert checked_vectors("b", [vector], 1, 4) == [vector]
    with pytest.raises(BackendError) as wrong_count:
        checked_vectors("b", [vector], 2, None)
    with pytest.raises(BackendError) as ignored_dimensions:
        checked_vectors("b", [vector], 1, 2)
    assert wrong_count.value.reason == "backend_error"
    assert ignored_dimensions.value.reason == "invalid_request"


def test_tools_and_tool_calls_count_in_the_prompt_estimate() -> None:
    plain = estimate_prompt_tokens([ChatMessage("user", "x" * 40)])
    assert plain == 4 + 10
    with_tools = estimate_prompt_tokens([ChatMessage("user", "x" * 40)], ChatOptions(tools=[TOOL]))
    assert with_tools > plain
    called = estimate_prompt_tokens([ChatMessage("assistant", "", tool_calls=[CALL])])
    assert called > 4
    assert estimate_text_tokens(["abcd", "abcde"]) == 1 + 2


def test_a_key_file_is_read_again_once_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "key"
    path.write_text("first\n")
    key = ApiKeyFile(path, recheck_s=0)
    assert key() == "first"
    path.write_text("second")
    assert key() == "second"
    path.write_text("")  # a secret half-written while being rotated: the last key holds
    assert key() == "second"
    path.write_text("")
    with pytest.raises(ApiKeyError):
        ApiKeyFile(path)
