"""A streamed job as the gateway sees it once its worker has accepted it: the worker's
events in order, turned into text deltas, tool-call pieces and a final completion.

Guarantees to the relay above it: text arrives in the worker's order and complete (``seq``
must grow by one per event; a gap, or the job starting over on another worker after text
went out, ends the stream with an error: output that reached a client is never retried);
an attempt lost before any text (its worker silent for ``dispatch.idle_timeout_s`` or its
node gone, see ``attempt_watch.py``), or a retryable worker error before any text, raises
``AttemptFailed``, so the relay may hand the stream to another node; and whatever ends it
early leaves a cancel mark, so the worker aborts its backend call.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

from api_router.chat import StreamPiece
from api_router.dispatch.attempt_failure import AttemptFailed, stream_out_of_time, upstream_error
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
        self._release = release  # unregisters; with True also marks the job cancelled
        self._ended = ended  # told (node, outcome) once: the node's breaker verdict
        self._seq = 0
        self.text_out = False  # some output (text or tool calls) was handed over
        # The job's deadline is wall-clock (it travels to the worker); wait on our own clock.
        self._deadline = time.perf_counter() + (job.deadline_ms / 1000 - time.time())
        self._pending_error: ApiError | None = None
        self._closed = False

    @property
    def finished(self) -> bool:
        return self.done_at is not None

    async def next(self, wait_s: float) -> list[StreamPiece]:
        """What arrived next: text deltas and tool-call pieces, ending with the
        ``Completion`` when the job is done. An empty list means nothing came within
        ``wait_s`` (time for a heartbeat).
        Raises ``AttemptFailed`` when another node may take the stream over (nothing
        reached the client), else ``ApiError`` for a worker error, a lost worker or the
        deadline."""
        if self._pending_error is not None:
            raise self._pending_error
        now = time.perf_counter()
        try:
            first = await self._waiter.next(min(wait_s, self._deadline - now))
        except TimeoutError:
            if time.perf_counter() >= self._deadline:
                raise stream_out_of_time(self.node.node_id) from None
            return []
        except AttemptFailed as lost:
            raise self._after_text(lost) from None
        pieces: list[StreamPiece] = []
        for event in (first, *self._waiter.ready()):
            try:
                pieces.extend(self._pieces(event))
            except ApiError as exc:
                if not pieces:
                    raise
                self._pending_error = exc  # hand over the output before it first
                break
            if self.finished:
                break
        return pieces

    def _after_text(self, failure: AttemptFailed) -> ApiError:
        """Once text went out, a failure is final: the stream ends with it."""
        if not self.text_out:
            return failure
        return ApiError(failure.code, failure.message)

    def _pieces(self, event: Event) -> list[StreamPiece]:
        node = self.node.node_id
        if event.type == "accepted":
            if not self.text_out:  # taken over by another worker before any text: harmless
                self._seq = 0
                return []
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
                calls = data.tool_calls or []
                self.text_out = self.text_out or bool(data.delta or calls)
                return [data.delta, *calls] if data.delta else list(calls)
            if event.type == "done":
                self.done_at = time.perf_counter()
                return [event.completion()]
        except ProtocolError:
            raise ApiError("upstream_error", f"node {node} sent an unreadable event") from None
        raise self._after_text(upstream_error(event, AttemptFailed))

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
