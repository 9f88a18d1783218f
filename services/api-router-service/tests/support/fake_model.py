"""The fake servers' model: deterministic, so that tests can predict every answer.

Offered tools (and not told ``tool_choice: "none"``), it calls them when the last message
is the user's: the named one, else every tool in order, each with arguments built from
its parameters' schema (strings get the user's words). Once the last message is a tool
result it answers in text, quoting the results. Asked for JSON it answers an object built
the same way from the schema (``{"answer": ...}`` without one). Embeddings are hash bytes
scaled to sixteenths, exact in float32.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FakeCall:
    name: str
    arguments: dict[str, Any]


def last_user(messages: list[dict[str, Any]]) -> str:
    return next((_text(m) for m in reversed(messages) if m["role"] == "user"), "")


def text_reply(voice: str, messages: list[dict[str, Any]]) -> str:
    if messages and messages[-1]["role"] == "tool":
        results = [_text(m) for m in messages if m["role"] == "tool"]
        return f"{voice} says: the tools said {'; '.join(results)}"
    return f"{voice} says: {last_user(messages)}"


def tool_calls(body: dict[str, Any]) -> list[FakeCall]:
    """The calls the model makes for this request (none without tools)."""
    tools = [t["function"] for t in body.get("tools") or []]
    choice = body.get("tool_choice", "auto")
    messages = body["messages"]
    if not tools or choice == "none" or messages[-1]["role"] == "tool":
        return []
    if isinstance(choice, dict):
        tools = [t for t in tools if t["name"] == choice["function"]["name"]]
    text = last_user(messages)
    return [FakeCall(t["name"], built_object(t.get("parameters") or {}, text)) for t in tools]


def json_reply(schema: dict[str, Any] | None, messages: list[dict[str, Any]]) -> str:
    text = last_user(messages)
    answer = built_object(schema, text) if schema else {"answer": text}
    return json.dumps(answer)


def built_object(schema: Any, text: str) -> dict[str, Any]:
    properties = schema.get("properties") if isinstance(schema, dict) else None
    if not isinstance(properties, dict):
        return {}
    return {name: _value(spec, text) for name, spec in properties.items()}


def embedding(text: str, dimensions: int) -> list[float]:
    return [(byte % 16 - 8) / 16 for byte in hashlib.shake_256(text.encode()).digest(dimensions)]


def words(messages: list[dict[str, Any]]) -> int:
    return sum(len(_text(m).split()) for m in messages)


def _value(spec: Any, text: str) -> Any:
    kind = spec.get("type") if isinstance(spec, dict) else None
    if kind == "string":
        return text
    if kind == "integer":
        return len(text.split())
    if kind == "number":
        return 1.5
    if kind == "boolean":
        return True
    if kind == "array":
        return []
    if kind == "object":
        return built_object(spec, text)
    return None


def _text(message: dict[str, Any]) -> str:
    content = message.get("content") or ""
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content)
    return str(content)
