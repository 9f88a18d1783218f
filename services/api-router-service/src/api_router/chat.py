"""The conversation shapes shared by the public API, the stream protocol and the backends."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

Role = Literal["system", "user", "assistant", "tool"]


class ChatMessage(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    role: Role
    content: str


class ChatOptions(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """Sampling options; a missing option means "the backend's default"."""

    temperature: Annotated[float, msgspec.Meta(ge=0, le=2)] | None = None
    top_p: Annotated[float, msgspec.Meta(ge=0, le=1)] | None = None
    max_tokens: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] | None = None
    stop: (
        Annotated[list[Annotated[str, msgspec.Meta(min_length=1)]], msgspec.Meta(max_length=8)]
        | None
    ) = None
    seed: int | None = None


class Usage(msgspec.Struct, frozen=True):
    prompt_tokens: Annotated[int, msgspec.Meta(ge=0)]
    completion_tokens: Annotated[int, msgspec.Meta(ge=0)]

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class Completion(msgspec.Struct, frozen=True):
    """What a backend answered: the assistant's message, why it stopped, and token counts."""

    message: ChatMessage
    finish_reason: str
    usage: Usage
    # Free-form string pairs from the backend (the mock backend marks itself here).
    metadata: dict[str, str] = msgspec.field(default_factory=dict)
