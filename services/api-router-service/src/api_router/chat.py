"""The conversation shapes shared by the public API, the stream protocol and the backends.

Tool calling and output formats are in ``chat_tools.py``; ``ChatOptions.features`` names
what a request asks of a backend beyond plain chat, so that the gateway sends it only to a
kind of node that honours it (``backends/capabilities.py``).
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from api_router.chat_tools import (
    JsonObjectFormat,
    JsonSchemaFormat,
    NamedToolChoice,
    ResponseFormat,
    Tool,
    ToolCall,
    ToolCallDelta,
    ToolCallId,
    ToolChoice,
)

Role = Literal["system", "user", "assistant", "tool"]
# The option types, with OpenAI's bounds (its chat API takes the same ones).
Penalty = Annotated[float, msgspec.Meta(ge=-2, le=2)]
# Token id of the model's tokenizer (as OpenAI writes logit_bias keys) -> bias.
LogitBias = Annotated[
    dict[
        Annotated[str, msgspec.Meta(pattern=r"^[0-9]{1,10}$")],
        Annotated[float, msgspec.Meta(ge=-100, le=100)],
    ],
    msgspec.Meta(max_length=1024),
]
Tools = Annotated[list[Tool], msgspec.Meta(max_length=128)]
ToolCalls = Annotated[list[ToolCall], msgspec.Meta(max_length=128)]


class ChatMessage(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """One message. ``tool_calls``: the calls an assistant message made; ``tool_call_id``:
    the call a ``tool`` message answers. Both are left out of the wire when unset, so a
    message without them reads as it did in protocol v1."""

    role: Role
    content: str
    tool_calls: ToolCalls | None = None
    tool_call_id: ToolCallId | None = None


class ChatOptions(
    msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True, kw_only=True
):
    """How to answer; a missing option means "the backend's default"."""

    temperature: Annotated[float, msgspec.Meta(ge=0, le=2)] | None = None
    top_p: Annotated[float, msgspec.Meta(ge=0, le=1)] | None = None
    max_tokens: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] | None = None
    stop: (
        Annotated[list[Annotated[str, msgspec.Meta(min_length=1)]], msgspec.Meta(max_length=8)]
        | None
    ) = None
    seed: int | None = None
    # Protocol v2 (see dispatch/protocol.py): only nodes that honour them get them.
    presence_penalty: Penalty | None = None
    frequency_penalty: Penalty | None = None
    logit_bias: LogitBias | None = None
    tools: Tools | None = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None

    def features(self) -> frozenset[str]:
        """What these options ask of a backend beyond protocol v1's sampling options, by
        the parameter's name (with the value where only some values are hard)."""
        asked = {
            name
            for name in ("presence_penalty", "frequency_penalty", "logit_bias")
            if getattr(self, name) is not None
        }
        if self.tools:
            asked.add("tools")
            if self.parallel_tool_calls is not None:
                asked.add("parallel_tool_calls")
        choice = self.tool_choice
        if isinstance(choice, NamedToolChoice):
            asked.add("tool_choice:function")
        elif choice == "required":
            asked.add("tool_choice:required")
        if isinstance(self.response_format, JsonObjectFormat):
            asked.add("response_format:json_object")
        elif isinstance(self.response_format, JsonSchemaFormat):
            asked.add("response_format:json_schema")
        return frozenset(asked)


def history_features(messages: list[ChatMessage]) -> frozenset[str]:
    """A conversation that carries tool calls or tool results needs a node that knows
    them (a worker of protocol v1 would refuse the job as malformed); one whose tool calls
    have arguments that are not a JSON object, a node that takes them as text."""
    asked: set[str] = set()
    for message in messages:
        if message.tool_calls is not None or message.tool_call_id is not None:
            asked.add("tools")
        for call in message.tool_calls or ():
            if not _is_json_object(call.function.arguments):
                asked.add("tool_calls:text_arguments")
    return frozenset(asked)


def _is_json_object(text: str) -> bool:
    """``text`` is a JSON object, or empty (no arguments, read as ``{}``)."""
    try:
        return isinstance(_json_value.decode(text.strip() or "{}"), dict)
    except msgspec.DecodeError:
        return False


_json_value = msgspec.json.Decoder()


class Usage(msgspec.Struct, frozen=True):
    prompt_tokens: Annotated[int, msgspec.Meta(ge=0)]
    completion_tokens: Annotated[int, msgspec.Meta(ge=0)]

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class Completion(msgspec.Struct, frozen=True):
    """What a backend answered: the assistant's message (text, tool calls or both), why it
    stopped (``tool_calls`` when it wants tool results), and token counts."""

    message: ChatMessage
    finish_reason: str
    usage: Usage
    # Free-form string pairs from the backend (the mock backend marks itself here).
    metadata: dict[str, str] = msgspec.field(default_factory=dict)


# What a streamed answer is made of, from a backend to the client: text, pieces of tool
# calls, and last the whole Completion.
StreamPiece = str | ToolCallDelta | Completion
