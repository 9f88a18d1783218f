"""Tool calling and output formats, in OpenAI's shapes, shared by the public APIs, the stream
protocol and the backends (each backend adapter maps them to its own API).

A tool call's ``arguments`` is JSON text, as OpenAI sends it; Ollama's adapter turns it
into the object Ollama wants and back. ``ToolCallDelta`` is a piece of a streamed tool
call in OpenAI's streaming shape: the first piece of a call has its ``index``, ``id``,
``type`` and name; the following ones add to its ``arguments``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

# OpenAI's rule for function names (tools offered, and tool_choice).
FunctionName = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
# A JSON Schema, passed to the backend as given (objects only: a tool's parameters and an
# output schema describe JSON objects).
JsonSchema = dict[str, Any]
ToolCallId = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]


class FunctionCall(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(max_length=256)]
    arguments: str  # JSON text


class ToolCall(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A call the assistant made (in an answer, or in the history a client sends back)."""

    id: ToolCallId
    function: FunctionCall
    type: Literal["function"] = "function"


class FunctionCallDelta(msgspec.Struct, frozen=True, omit_defaults=True):
    name: str | None = None
    arguments: str | None = None


class ToolCallDelta(msgspec.Struct, frozen=True, omit_defaults=True):
    """A piece of a streamed tool call; ``index`` says which call of the answer it adds to."""

    index: Annotated[int, msgspec.Meta(ge=0)]
    id: str | None = None
    type: Literal["function"] | None = None
    function: FunctionCallDelta | None = None


class FunctionDefinition(
    msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True
):
    name: FunctionName
    description: Annotated[str, msgspec.Meta(max_length=8192)] | None = None
    parameters: JsonSchema | None = None
    strict: bool | None = None


class Tool(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A tool the model may call: a function with JSON Schema parameters."""

    type: Literal["function"]
    function: FunctionDefinition


class NamedFunction(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: FunctionName


class NamedToolChoice(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Forces a call of this one function."""

    type: Literal["function"]
    function: NamedFunction


ToolChoice = Literal["none", "auto", "required"] | NamedToolChoice


class _Format(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="type"):
    """An output format; ``type`` names it."""


class TextFormat(_Format, frozen=True, tag="text"):
    """Plain text (the default)."""


class JsonObjectFormat(_Format, frozen=True, tag="json_object"):
    """Any valid JSON object ("JSON mode")."""


class JsonSchemaSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    name: FunctionName
    description: Annotated[str, msgspec.Meta(max_length=8192)] | None = None
    schema: JsonSchema | None = None
    strict: bool | None = None


class JsonSchemaFormat(_Format, frozen=True, tag="json_schema"):
    """A JSON object that follows ``json_schema.schema`` (structured output)."""

    json_schema: JsonSchemaSpec


ResponseFormat = TextFormat | JsonObjectFormat | JsonSchemaFormat
