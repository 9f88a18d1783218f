"""Embedding vectors as every layer carries them: base64 of little-endian float32, OpenAI's
``encoding_format: "base64"``.

Backends answer JSON floats; their adapter packs each vector once. A vector packed this
way is a fifth of its JSON size on the stream protocol and is already what a client asking
for base64 (the official SDK's default) gets; a client asking for floats gets them
unpacked, as float32 values (what OpenAI serves too).
"""

from __future__ import annotations

import base64
import struct
import sys
from array import array
from collections.abc import Sequence
from typing import Annotated

import msgspec

from api_router.chat import Usage

# Inputs per request: OpenAI's own limit.
MAX_INPUTS = 2048
EmbeddingInput = Annotated[str, msgspec.Meta(min_length=1)]
# `dimensions` only shortens a model's vectors, and no model we know of makes more than
# this many; the bound also keeps one answer's stream event within reason.
Dimensions = Annotated[int, msgspec.Meta(ge=1, le=16_384)]


class Embeddings(msgspec.Struct, frozen=True):
    """One packed vector per input, in input order; ``usage.completion_tokens`` is 0."""

    vectors: list[str]
    usage: Usage


def pack(vector: Sequence[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


def unpack(packed: str) -> list[float]:
    values = array("f", base64.b64decode(packed))
    if sys.byteorder == "big":
        values.byteswap()
    return values.tolist()
