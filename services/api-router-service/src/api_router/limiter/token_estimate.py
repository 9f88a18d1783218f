"""The prompt-token estimate reserved on admission, before any tokenizer has seen it.

Four characters per token is the usual rule of thumb for English with BPE tokenizers
(OpenAI's guidance); each message adds a few tokens of framing. Settlement replaces the
estimate with the backend's count, so an error here only shifts when tokens are charged.
"""

from __future__ import annotations

from collections.abc import Iterable

from api_router.chat import ChatMessage

_CHARS_PER_TOKEN = 4
_TOKENS_PER_MESSAGE = 4


def estimate_prompt_tokens(messages: Iterable[ChatMessage]) -> int:
    total = 0
    for message in messages:
        total += _TOKENS_PER_MESSAGE + -(-len(message.content) // _CHARS_PER_TOKEN)
    return total
