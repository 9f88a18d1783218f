"""A streamed answer of a direct node, as the relay reads it (the same surface as
``StreamedJob``): the backend adapter's pieces, read by a task of their own into a
bounded buffer, handed over in order and as many at once as have arrived.

The attempt counts as accepted at its first piece (``HttpTransport.stream`` waits for
it): whatever fails before then fails over like a whole answer, so the client's 200 and
first chunk leave together. After that, a failure ends the stream with an error (output
that reached a client is never retried). Closing the stream early cancels the reading
task, which closes the connection, which is how the backend learns to stop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing

from api_router.backends.base import BackendError
from api_router.chat import Completion, StreamPiece
from api_router.dispatch.attempt_failure import AttemptFailed, backend_failure, stream_out_of_time
from api_router.dispatch.protocol import Job
from api_router.dispatch.streamed_job import DispatchObserver, Outcome
from api_router.errors import ApiError
from api_router.routing.node_health import NodeHealth

_Item = StreamPiece | Exception


class DirectStream:
    def __init__(
        self,
        job: Job,
        node: NodeHealth,
        answer: AsyncIterator[StreamPiece],
        buffer: int,
        overflowed: asyncio.Event,
        release: Callable[[DirectStream], None],
        ended: Callable[[str, Outcome], None] | None = None,
    ) -> None:
        """``release``: told once when the stream closes (gives back its slot);
        ``ended``: told (node, outcome) once, the node's breaker verdict."""
        self.job = job
        self.node = node
        self.submitted_at = self.accepted_at = time.perf_counter()
        self.done_at: float | None = None
        self.tokens = 0
        self.overflowed = overflowed
        self.text_out = False
        self._release = release
        self._ended = ended
        self._items: asyncio.Queue[_Item] = asyncio.Queue(buffer)
        self._held: list[_Item] = []
        self._deadline = self.submitted_at + (job.deadline_ms / 1000 - time.time())
        self._pending_error: ApiError | None = None
        self._closed = False
        self.reader = asyncio.create_task(self._read(answer))

    @property
    def finished(self) -> bool:
        return self.done_at is not None

    async def opened(self) -> None:
        """Wait for the first piece; raises ``AttemptFailed`` (another node may take the
        request) when the backend fails or the deadline passes before it."""
        try:
            first = await self._get(self._deadline - time.perf_counter())
        except TimeoutError:
            raise AttemptFailed(
                "upstream_timeout",
                f"node {self.node.node_id} did not answer in time",
                retryable=False,
                node_fault=True,
            ) from None
        if isinstance(first, Exception):
            raise self._failure(first)
        self.accepted_at = time.perf_counter()
        self._held.append(first)

    def interrupt(self, error: ApiError) -> None:
        """End the stream from outside (the gateway's shutdown grace is over)."""
        self._pending_error = self._pending_error or error
        self._put(error)

    async def next(self, wait_s: float) -> list[StreamPiece]:
        """What arrived next (see ``StreamedJob.next``): an empty list when nothing came
        within ``wait_s``; ``ApiError`` when the stream failed or ran out of time."""
        if self._pending_error is not None:
            raise self._pending_error
        if self._held:
            first, self._held = self._held[0], self._held[1:]
        else:
            try:
                first = await self._get(min(wait_s, self._deadline - time.perf_counter()))
            except TimeoutError:
                if time.perf_counter() >= self._deadline:
                    raise stream_out_of_time(self.node.node_id) from None
                return []
        pieces: list[StreamPiece] = []
        for item in (first, *self._ready()):
            if isinstance(item, Exception):
                error = self._failure(item)
                if not pieces:
                    raise error
                self._pending_error = error  # hand over the output before it first
                break
            pieces.append(item)
            self._count(item)
            if self.finished:
                break
        return pieces

    def close(self, outcome: Outcome, observe: DispatchObserver) -> None:
        """Stop reading (closing the backend's connection unless it finished)."""
        if self._closed:
            return
        self.abandon()
        if self._ended is not None:
            self._ended(self.node.node_id, outcome)
        ended = self.done_at or time.perf_counter()
        observe(
            self.node.node_id, "done" if outcome == "ok" else outcome, ended - self.submitted_at
        )

    def abandon(self) -> None:
        """Stop reading without a verdict (the attempt failed before it was accepted)."""
        if self._closed:
            return
        self._closed = True
        self.reader.cancel()
        self._release(self)

    async def _read(self, answer: AsyncIterator[StreamPiece]) -> None:
        try:
            async with aclosing(answer):  # type: ignore[type-var]  # an async generator
                async for piece in answer:
                    self._put(piece)
                    if isinstance(piece, Completion):
                        return
        except BackendError as exc:
            self._put(exc)

    def _put(self, item: _Item) -> None:
        try:
            self._items.put_nowait(item)
        except asyncio.QueueFull:  # the client reads too slowly: the relay cuts it off
            self.overflowed.set()

    async def _get(self, timeout_s: float) -> _Item:
        async with asyncio.timeout(max(timeout_s, 0.0)):
            return await self._items.get()

    def _ready(self) -> list[_Item]:
        items = []
        while not self._items.empty():
            items.append(self._items.get_nowait())
        return items

    def _count(self, piece: StreamPiece) -> None:
        if isinstance(piece, Completion):
            self.done_at = time.perf_counter()
            return
        self.tokens += 1  # one piece is one token for Ollama and OpenAI-compatible servers
        self.text_out = True

    def _failure(self, error: Exception) -> ApiError:
        """Before any output another node may still take over; after, it is final."""
        if isinstance(error, BackendError):
            failure: ApiError = backend_failure(self.node.node_id, error)
        elif isinstance(error, ApiError):
            failure = error
        else:
            raise error  # a bug: surface it
        if self.text_out and isinstance(failure, AttemptFailed):
            return ApiError(failure.code, failure.message)
        return failure
