"""The protocol every backend adapter implements, and the error it raises."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import NamedTuple, Protocol

from api_router.backends.capabilities import lacking
from api_router.chat import ChatMessage, ChatOptions, Completion, StreamPiece
from api_router.dispatch.protocol import ErrorReason
from api_router.embeddings import Embeddings

# How long a health beat waits for a backend to list its models.
INVENTORY_TIMEOUT_S = 5.0


class ModelInventory(NamedTuple):
    available: list[str]  # models the backend can serve
    loaded: list[str]  # models resident in memory now (a subset of available)


class BackendError(Exception):
    """A backend call failed; becomes an ``error`` event with this reason."""

    def __init__(self, reason: ErrorReason, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.reason: ErrorReason = reason
        self.message = message
        self.retryable = retryable


class Backend(Protocol):
    # The adapter's name, which is the kind of node it makes (backends/capabilities.py).
    name: str

    async def chat(
        self,
        model: str,
        messages: Sequence[ChatMessage],
        options: ChatOptions,
        timeout_s: float,
    ) -> Completion:
        """One whole completion (text, tool calls or both), or ``BackendError`` (never a
        hang past ``timeout_s``)."""
        ...

    def stream(
        self,
        model: str,
        messages: Sequence[ChatMessage],
        options: ChatOptions,
        timeout_s: float,
    ) -> AsyncIterator[StreamPiece]:
        """The answer as the backend produces it: text deltas and tool-call pieces, then
        exactly one ``Completion`` (the whole message, finish reason and usage), or
        ``BackendError``. Closing the iterator early aborts the backend call (the
        connection is closed)."""
        ...

    async def embed(
        self, model: str, inputs: Sequence[str], dimensions: int | None, timeout_s: float
    ) -> Embeddings:
        """One vector per input (``dimensions`` long when given), or ``BackendError``."""
        ...

    async def inventory(self) -> ModelInventory:
        """Models the backend serves and has loaded; ``BackendError`` when unreachable."""
        ...

    async def aclose(self) -> None: ...


def refuse_unhonoured(kind: str, asked: frozenset[str]) -> None:
    """Refuse a job asking for what ``kind`` does not honour rather than drop it (routing
    never sends one; this guards against a gateway with a wrong view of the node)."""
    missing = lacking(kind, asked)
    if missing:
        raise BackendError(
            "invalid_request", f"{kind} does not support {', '.join(missing)}", retryable=False
        )


def checked_vectors(
    backend: str, vectors: list[list[float]], inputs: int, dimensions: int | None
) -> list[list[float]]:
    """The backend's vectors, refused when they are not what was asked for: one per input,
    each ``dimensions`` long (a backend that ignores ``dimensions`` must not pass for one
    that honours it)."""
    if len(vectors) != inputs:
        raise BackendError(
            "backend_error",
            f"{backend} answered {len(vectors)} embeddings for {inputs} inputs",
            retryable=False,
        )
    if dimensions is not None and any(len(v) != dimensions for v in vectors):
        raise BackendError(
            "invalid_request",
            f"{backend} does not shorten this model's embeddings to {dimensions} dimensions "
            f"(it answered {len(vectors[0])})",
            retryable=False,
        )
    return vectors
