"""The prompt-token estimate reserved on admission, before any tokenizer has seen it.

Four characters per token is the usual rule of thumb for English with BPE tokenizers
(OpenAI's guidance); each message adds a few tokens of framing. Tools offered, tool calls
in the history and an output schema are part of the prompt the model reads, so they count
by the size of their JSON. Settlement replaces the estimate with the backend's count, so
an error here only shifts when tokens are charged.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from api_router.chat import ChatMessage, ChatOptions
from api_router.chat_tools import JsonSchemaFormat

_CHARS_PER_TOKEN = 4
_TOKENS_PER_MESSAGE = 4


def estimate_prompt_tokens(
    messages: Iterable[ChatMessage], options: ChatOptions | None = None
) -> int:
    total = 0
    for message in messages:
        chars = len(message.content)
        if message.tool_calls:
            chars += len(msgspec.json.encode(message.tool_calls))
        total += _TOKENS_PER_MESSAGE + _tokens(chars)
    if options is not None:
        if options.tools:
            total += _tokens(len(msgspec.json.encode(options.tools)))
        if isinstance(options.response_format, JsonSchemaFormat):
            total += _tokens(len(msgspec.json.encode(options.response_format)))
    return total


def estimate_text_tokens(texts: Iterable[str]) -> int:
    """Inputs to embed: their characters only (no framing)."""
    return sum(_tokens(len(text)) for text in texts)


def _tokens(chars: int) -> int:
    return -(-chars // _CHARS_PER_TOKEN)
