"""Relays a streamed job to its client as server-sent events, for both APIs (each brings
its ``StreamFormat``).

Pure ASGI rather than a Starlette ``StreamingResponse``, because three things race and
the first one ends the stream:

- the writer: worker output, in order, as it arrives (what is waiting is sent in one
  write), with a comment heartbeat after ``stream.heartbeat_s`` of silence;
- the client leaving: seen while we wait on the worker, not at the next write, so a
  disconnect during a long prompt cancels the job at once;
- the request's buffer filling up (``stream.buffer_events``) because the client reads
  too slowly; a single write blocked for ``stream.write_timeout_s`` counts the same.

An attempt lost before any text went out (its worker silent or its node gone) is handed
to the next candidate of the route plan (``RoutedStream.take_over``) while the client's
stream stays open: the client sees one answer. Whatever ends the stream early leaves the
job's cancel mark (the worker aborts its backend call) and the outcome, tokens so far and
time to first token on the ``RequestContext``; every ending that sends a last frame leaves
them before that frame (the usage record is journaled before the last byte).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Protocol

from starlette.types import Receive, Scope, Send

from api_router.api.public.inference_contract import StreamTimings
from api_router.api.public.routed_chat import RoutedStream, outcome_of
from api_router.api.request_context import RequestContext
from api_router.chat import Completion, StreamPiece, Usage
from api_router.chat_tools import ToolCallDelta
from api_router.config.settings import StreamSettings
from api_router.dispatch.attempt_failure import AttemptFailed
from api_router.dispatch.streamed_job import Outcome
from api_router.errors import ApiError

log = logging.getLogger(__name__)

HEARTBEAT = b": keep-alive\n\n"
_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),  # nginx: pass events on as they come
]
# After a cut-off, how long the error event may take to go out before we just close.
_FAREWELL_S = 0.1


class StreamFormat(Protocol):
    """How one API spells the events of a stream (each returns whole SSE frames)."""

    def delta(self, text: str) -> bytes: ...

    def tool_call(self, piece: ToolCallDelta) -> bytes: ...

    def done(self, completion: Completion, timings: StreamTimings, node_id: str) -> bytes: ...

    def error(self, error: ApiError) -> bytes: ...


class SlowReader(Exception):
    """The client is not reading fast enough (buffer full, or a write blocked too long)."""


class EventStreamResponse:
    def __init__(
        self,
        routed: RoutedStream,
        spelling: StreamFormat,
        context: RequestContext,
        settings: StreamSettings,
    ) -> None:
        self._routed = routed
        self._spelling = spelling
        self._context = context
        self._settings = settings
        self._completion: Completion | None = None
        self._finished = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        outcome: Outcome = "cancelled"
        try:
            await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
            writer = asyncio.create_task(self._write(send))
            left = asyncio.create_task(_client_gone(receive))
            overflow = asyncio.create_task(self._routed.streamed.overflowed.wait())
            await asyncio.wait({writer, left, overflow}, return_when=asyncio.FIRST_COMPLETED)
            for task in (writer, left, overflow):
                task.cancel()
            await asyncio.wait({writer, left, overflow})
            if not writer.cancelled():
                outcome = writer.result()  # SlowReader, or a bug, surfaces here
            elif not left.cancelled():
                node_id = self._routed.streamed.node.node_id
                log.info("client left mid-stream", extra={"node_id": node_id})
            elif not overflow.cancelled():
                await self._cut_off(send, "buffer full")
        except SlowReader:
            await self._cut_off(send, "write blocked")
        finally:
            self._finish(outcome)

    async def _write(self, send: Send) -> Outcome:
        heartbeat_s = self._settings.heartbeat_s
        last_sent = time.perf_counter()
        try:
            while True:
                wait_s = max(last_sent + heartbeat_s - time.perf_counter(), 0.0)
                try:
                    pieces = await self._routed.streamed.next(wait_s)
                except AttemptFailed as lost:  # nothing reached the client yet
                    await self._take_over(lost)
                    continue
                if not pieces:
                    if time.perf_counter() - last_sent >= heartbeat_s:
                        await self._send(send, HEARTBEAT)
                        last_sent = time.perf_counter()
                    continue
                if self._context.usage.ttft_ms is None and not isinstance(pieces[0], Completion):
                    elapsed = time.perf_counter() - self._context.telemetry.started
                    self._context.usage.ttft_ms = _ms(elapsed)
                frames = [self._frame(piece) for piece in pieces]
                if self._completion is not None:
                    self._finish("ok")
                    await self._send(send, b"".join(frames), more=False)
                    return "ok"
                await self._send(send, b"".join(frames))
                last_sent = time.perf_counter()
        except ApiError as exc:
            self._context.error_code = exc.code
            self._finish(outcome_of(exc))
            await self._send(send, self._spelling.error(exc), more=False)
            return outcome_of(exc)

    async def _take_over(self, lost: AttemptFailed) -> None:
        """Close the lost attempt (its node's breaker counts it, its job is cancelled)
        and hand the stream to the next candidate; raises when none may take it."""
        lost_job = self._routed.streamed
        log.warning(
            "stream handed to another node",
            extra={"node_id": lost_job.node.node_id, "reason": lost.message},
        )
        lost_job.close(outcome_of(lost), self._context.telemetry.dispatched)
        await self._routed.take_over(lost)

    def _frame(self, piece: StreamPiece) -> bytes:
        if isinstance(piece, str):
            return self._spelling.delta(piece)
        if isinstance(piece, ToolCallDelta):
            return self._spelling.tool_call(piece)
        self._completion = piece
        node_id = self._routed.streamed.node.node_id
        return self._spelling.done(piece, self._timings(), node_id)

    async def _send(self, send: Send, body: bytes, more: bool = True) -> None:
        try:
            async with asyncio.timeout(self._settings.write_timeout_s):
                await send({"type": "http.response.body", "body": body, "more_body": more})
        except TimeoutError:
            raise SlowReader from None

    async def _cut_off(self, send: Send, why: str) -> None:
        log.warning(
            "slow reader cut off",
            extra={
                "reason": why,
                "node_id": self._routed.streamed.node.node_id,
                "buffer_events": self._settings.buffer_events,
            },
        )
        error = ApiError("slow_reader", f"the client read the stream too slowly ({why})")
        self._context.error_code = error.code
        self._finish("cancelled")
        try:  # best effort: the client is, after all, not reading
            async with asyncio.timeout(_FAREWELL_S):
                await send(
                    {
                        "type": "http.response.body",
                        "body": self._spelling.error(error),
                        "more_body": False,
                    }
                )
        except TimeoutError:
            pass

    def _timings(self) -> StreamTimings:
        streamed, context = self._routed.streamed, self._context
        done_at = streamed.done_at or time.perf_counter()
        total = time.perf_counter() - context.telemetry.started
        queue = streamed.accepted_at - streamed.submitted_at
        inference = done_at - streamed.accepted_at
        ttft = context.usage.ttft_ms if context.usage.ttft_ms is not None else _ms(total)
        return StreamTimings(
            total_ms=_ms(total),
            gateway_ms=_ms(total - queue - inference),
            queue_ms=_ms(queue),
            inference_ms=_ms(inference),
            ttft_ms=ttft,
        )

    def _finish(self, outcome: Outcome) -> None:
        """Close the job, settle the admission and leave the usage facts (once)."""
        if self._finished:
            return
        self._finished = True
        context, streamed = self._context, self._routed.streamed
        streamed.close(outcome, context.telemetry.dispatched)
        facts = context.usage
        facts.status = outcome
        done_at = streamed.done_at or time.perf_counter()
        facts.queue_ms = _ms(streamed.accepted_at - streamed.submitted_at)
        facts.inference_ms = _ms(done_at - streamed.accepted_at)
        # A stream cut short is charged the tokens produced until then (backends report
        # prompt tokens only at the end).
        usage = Usage(prompt_tokens=0, completion_tokens=streamed.tokens)
        if self._completion is not None:
            usage = self._completion.usage
        self._routed.admitted.settle(usage, accepted=True)


async def _client_gone(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)
