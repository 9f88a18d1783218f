"""What each kind of node honours beyond protocol v1, by feature name.

A request names what it asks for (``ChatOptions.features``, ``history_features``,
``EmbedPayload.features``): a parameter (``logit_bias``), or a parameter with a value only
some backends can do (``tool_choice:required``). The gateway routes it only to nodes
whose kind honours all of it; when no node of the model does, it is refused with 400
``unsupported_parameter`` naming the parameter and the kinds. Nothing asked for is ever
dropped on the way. A node's kind is its backend adapter's name, which its worker reports
(``NodeHealth``); a worker that predates protocol v2 reports none and honours nothing
here. The adapters use the same table to refuse a job that asks for more (which routing
never sends them).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

from api_router.errors import ApiError

# Feature -> (the request parameter it is, what it asks in words).
FEATURES: Final[Mapping[str, tuple[str, str]]] = {
    "presence_penalty": ("presence_penalty", "presence_penalty"),
    "frequency_penalty": ("frequency_penalty", "frequency_penalty"),
    "logit_bias": ("logit_bias", "logit_bias"),
    "tools": ("tools", "tools"),
    "parallel_tool_calls": ("parallel_tool_calls", "parallel_tool_calls"),
    "tool_choice:required": ("tool_choice", 'tool_choice "required"'),
    "tool_choice:function": ("tool_choice", "a tool_choice naming a function"),
    "response_format:json_object": ("response_format", 'response_format "json_object"'),
    "response_format:json_schema": ("response_format", 'response_format "json_schema"'),
    "tool_calls:text_arguments": (
        "messages",
        "a tool call whose arguments are not a JSON object",
    ),
    "embeddings": ("model", "embeddings"),
    "dimensions": ("dimensions", "dimensions"),
}
EVERYTHING: Final = frozenset(FEATURES)
_TEXT_ONLY = "the mock backend answers only text"
# Why a kind lacks a feature, for the refusal's message.
_LACKS: Final[Mapping[str, Mapping[str, str]]] = {
    "ollama": {
        "logit_bias": "Ollama has no logit bias",
        "tool_choice:required": "Ollama cannot be made to call a tool",
        "tool_choice:function": "Ollama cannot be made to call a tool",
        "tool_calls:text_arguments": "Ollama takes tool call arguments as a JSON object only",
    },
    "mock": {
        feature: _TEXT_ONLY
        for feature in EVERYTHING
        if feature.startswith(("tool", "parallel", "response_format"))
    },
}
HONOURED: Final[Mapping[str, frozenset[str]]] = {
    "openai": EVERYTHING,
    **{kind: EVERYTHING - lacks.keys() for kind, lacks in _LACKS.items()},
}
_OLDER_WORKERS = "workers older than protocol v2"


def honours(kind: str, asked: frozenset[str]) -> bool:
    return asked <= HONOURED.get(kind, frozenset())


def lacking(kind: str, asked: frozenset[str]) -> list[str]:
    """The features of ``asked`` that ``kind`` does not honour, in a stable order."""
    return sorted(asked - HONOURED.get(kind, frozenset()))


def refusal(model: str, asked: frozenset[str], kinds: Iterable[str]) -> ApiError:
    """The 400 for a request none of ``kinds`` (the kinds of the model's nodes) can serve:
    it names the first feature the first kind lacks, and why."""
    ordered = sorted(set(kinds))
    feature = lacking(ordered[0], asked)[0]
    param, what = FEATURES[feature]
    names = ", ".join(kind or _OLDER_WORKERS for kind in ordered)
    why = _LACKS.get(ordered[0], {}).get(feature)
    return ApiError(
        "unsupported_parameter",
        f"{what} is not supported by the nodes serving model {model!r} ({names})"
        + (f": {why}" if why else ""),
        param=param,
    )
