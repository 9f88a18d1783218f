"""A backend that times its calls and counts its failures into the worker's metrics,
around whichever adapter the worker runs: the agent calls it like any backend."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Sequence
from contextlib import aclosing
from typing import TypeVar

from api_router.backends.base import Backend, BackendError, ModelInventory
from api_router.chat import ChatMessage, ChatOptions, Completion, StreamPiece
from api_router.embeddings import Embeddings
from api_router.telemetry.worker_metrics import WorkerMetrics

T = TypeVar("T")


class MeteredBackend:
    def __init__(self, backend: Backend, metrics: WorkerMetrics) -> None:
        self._backend = backend
        self._metrics = metrics
        self.name = backend.name

    async def chat(
        self,
        model: str,
        messages: Sequence[ChatMessage],
        options: ChatOptions,
        timeout_s: float,
    ) -> Completion:
        return await self._timed(
            model, "chat", self._backend.chat(model, messages, options, timeout_s)
        )

    async def stream(
        self,
        model: str,
        messages: Sequence[ChatMessage],
        options: ChatOptions,
        timeout_s: float,
    ) -> AsyncIterator[StreamPiece]:
        started = time.perf_counter()
        first = True
        answer = self._backend.stream(model, messages, options, timeout_s)
        try:
            async with aclosing(answer):  # type: ignore[type-var]  # an async generator
                async for piece in answer:
                    if first and not isinstance(piece, Completion) and piece:
                        first = False
                        ttft = time.perf_counter() - started
                        self._metrics.backend_ttft.record(ttft, self._labels(model))
                    if isinstance(piece, Completion):
                        self._ended(model, "ok", started)
                    yield piece
        except BackendError as exc:
            self._failed(model, "stream", exc, started)
            raise

    async def embed(
        self, model: str, inputs: Sequence[str], dimensions: int | None, timeout_s: float
    ) -> Embeddings:
        return await self._timed(
            model, "embed", self._backend.embed(model, inputs, dimensions, timeout_s)
        )

    async def inventory(self) -> ModelInventory:
        try:
            return await self._backend.inventory()
        except BackendError as exc:
            self._metrics.backend_errors.add(
                1, {"node": self._metrics.node, "kind": exc.reason, "call": "inventory"}
            )
            raise

    async def aclose(self) -> None:
        await self._backend.aclose()

    async def _timed(self, model: str, call: str, work: Awaitable[T]) -> T:
        started = time.perf_counter()
        try:
            result = await work
        except BackendError as exc:
            self._failed(model, call, exc, started)
            raise
        self._ended(model, "ok", started)
        return result

    def _failed(self, model: str, call: str, error: BackendError, started: float) -> None:
        labels = {"node": self._metrics.node, "kind": error.reason, "call": call}
        self._metrics.backend_errors.add(1, labels)
        self._ended(model, "error", started)

    def _ended(self, model: str, outcome: str, started: float) -> None:
        labels = {**self._labels(model), "outcome": outcome}
        self._metrics.backend_duration.record(time.perf_counter() - started, labels)

    def _labels(self, model: str) -> dict[str, str]:
        return {"node": self._metrics.node, "model": model}
