"""A streamed job as the gateway sees it once its worker has accepted it: the worker's
events in order, turned into text deltas and a final completion.

Guarantees to the relay above it: text arrives in the worker's order and complete (``seq``
must grow by one per event; a gap, or the job starting over on another worker after text
went out, ends the stream with an error: output that reached a client is never retried);
a worker silent for ``idle_timeout_s`` (killed mid-stream) ends it with
``upstream_timeout``; and whatever ends it early leaves a cancel mark, so the worker
aborts its backend call.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

from api_router.chat import Completion
from api_router.config.settings import StreamSettings
from api_router.dispatch.protocol import Event, Job, ProtocolError
from api_router.dispatch.reply_reader import ReplyWaiter
from api_router.errors import ApiError
from api_router.routing.node_health import NodeHealth

# How a dispatched job ended, as usage and audit records say it.
Outcome = Literal["ok", "cancelled", "upstream_error", "timeout"]
# Told how each dispatch ended: (node id, outcome, seconds from submit to last event).
DispatchObserver = Callable[[str, str, float], None]


class StreamedJob:
    def __init__(
        self,
        job: Job,
        node: NodeHealth,
        waiter: ReplyWaiter,
        settings: StreamSettings,
        times: tuple[float, float],
        release: Callable[[Job, bool], None],
        ended: Callable[[str, Outcome], None] | None = None,
    ) -> None:
        self.job = job
        self.node = node
        self.submitted_at, self.accepted_at = times  # time.perf_counter
        self.done_at: float | None = None
        self.tokens = 0  # completion tokens the worker has sent so far
        self.overflowed = waiter.overflowed
        self._waiter = waiter
        self._settings = settings
        self._release = release  # unregisters; with True also marks the job cancelled
        self._ended = ended  # told (node, outcome) once: the node's breaker verdict
        self._seq = 0
        self._text_out = False  # some text has been handed over for the client
        self._last_event_at = self.accepted_at
        # The job's deadline is wall-clock (it travels to the worker); wait on our own clock.
        self._deadline = time.perf_counter() + (job.deadline_ms / 1000 - time.time())
        self._pending_error: ApiError | None = None
        self._closed = False

    @property
    def finished(self) -> bool:
        return self.done_at is not None

    async def next(self, wait_s: float) -> list[str | Completion]:
        """What arrived next: text deltas, ending with the ``Completion`` when the job is
        done. An empty list means nothing came within ``wait_s`` (time for a heartbeat).
        Raises ``ApiError`` for a worker error, a silent worker or the deadline."""
        if self._pending_error is not None:
            raise self._pending_error
        now = time.perf_counter()
        idle_left = self._last_event_at + self._settings.idle_timeout_s - now
        try:
            first = await self._waiter.next(min(wait_s, idle_left, self._deadline - now))
        except TimeoutError:
            now = time.perf_counter()
            if now >= self._deadline or now - self._last_event_at >= self._settings.idle_timeout_s:
                what = "finish in time" if now >= self._deadline else "send anything for a while"
                raise ApiError(
                    "upstream_timeout", f"node {self.node.node_id} did not {what}"
                ) from None
            return []
        self._last_event_at = time.perf_counter()
        pieces: list[str | Completion] = []
        for event in (first, *self._waiter.ready()):
            try:
                piece = self._piece(event)
            except ApiError as exc:
                if not pieces:
                    raise
                self._pending_error = exc  # hand over the text before it first
                break
            if piece is not None:
                pieces.append(piece)
            if self.finished:
                break
        return pieces

    def _piece(self, event: Event) -> str | Completion | None:
        node = self.node.node_id
        if event.type == "accepted":
            if not self._text_out:  # taken over by another worker before any text: harmless
                self._seq = 0
                return None
            raise ApiError("upstream_error", f"node {node} restarted the job mid-stream")
        # An error ends the stream whatever its seq (a worker stopped mid-stream answers
        # `shutting_down` without knowing how far it got); text must not have gaps.
        if event.seq != self._seq + 1 and event.type != "error":
            raise ApiError("upstream_error", f"node {node} lost part of the stream")
        self._seq = event.seq
        try:
            if event.type == "chunk":
                data = event.chunk()
                self.tokens += data.tokens
                self._text_out = self._text_out or bool(data.delta)
                return data.delta or None
            if event.type == "done":
                self.done_at = time.perf_counter()
                return event.completion()
            error = event.error()
        except ProtocolError:
            raise ApiError("upstream_error", f"node {node} sent an unreadable event") from None
        raise ApiError("upstream_error", f"node {node} failed: {error.reason}: {error.message}")

    def close(self, outcome: Outcome, observe: DispatchObserver) -> None:
        """Stop listening; unless the job finished, tell its worker to stop."""
        if self._closed:
            return
        self._closed = True
        self._release(self.job, not self.finished)
        if self._ended is not None:
            self._ended(self.node.node_id, outcome)
        ended = self.done_at or time.perf_counter()
        observe(
            self.node.node_id, "done" if outcome == "ok" else outcome, ended - self.submitted_at
        )
