"""The final answer to a request, as kept in Redis for replays: status, the header fields
that describe the body, and the body bytes (a stream's whole event sequence)."""

from __future__ import annotations

from typing import Final

import msgspec

# Statuses a client should retry (the list and every 5xx): never stored, the key
# is released so that the retry runs.
RETRYABLE: Final = frozenset({402, 408, 429})


def retryable(status: int) -> bool:
    return status >= 500 or status in RETRYABLE


class StoredAnswer(msgspec.Struct, frozen=True, array_like=True):
    """Array-like msgpack: no field names in the stored bytes."""

    request_id: str  # the request that ran; its id is inside the body too
    model: str
    status: int
    headers: list[tuple[str, str]]
    body: bytes


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(StoredAnswer)


def encode_answer(answer: StoredAnswer) -> bytes:
    return _encoder.encode(answer)


def decode_answer(raw: bytes) -> StoredAnswer:
    return _decoder.decode(raw)
