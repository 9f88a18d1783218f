"""The protocol every backend adapter implements, and the error it raises."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import NamedTuple, Protocol

from api_router.chat import ChatMessage, ChatOptions, Completion
from api_router.dispatch.protocol import ErrorReason

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
    name: str

    async def chat(
        self,
        model: str,
        messages: Sequence[ChatMessage],
        options: ChatOptions,
        timeout_s: float,
    ) -> Completion:
        """One whole completion, or ``BackendError`` (never a hang past ``timeout_s``)."""
        ...

    def stream(
        self,
        model: str,
        messages: Sequence[ChatMessage],
        options: ChatOptions,
        timeout_s: float,
    ) -> AsyncIterator[str | Completion]:
        """The answer as the backend produces it: text deltas, then exactly one
        ``Completion`` (the whole message, finish reason and usage), or ``BackendError``.
        Closing the iterator early aborts the backend call (the connection is closed)."""
        ...

    async def inventory(self) -> ModelInventory:
        """Models the backend serves and has loaded; ``BackendError`` when unreachable."""
        ...

    async def aclose(self) -> None: ...
