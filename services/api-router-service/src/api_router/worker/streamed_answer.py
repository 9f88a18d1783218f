"""A streamed job on the worker: the backend's text and tool-call pieces go to the gateway
as ``chunk`` events while they are produced, and the job stops promptly when the gateway
cancels it.

The backend is read by its own task into a queue, so that the writer can (a) coalesce the
pieces that arrived while its last write was on the wire into one event (a backend faster
than Redis costs fewer events, not a growing lag), (b) notice a cancel mark while the
backend is silent, and (c) write keepalives during a long prompt.

Cancellation is seen within ``CANCEL_POLL_S``: every chunk is written by the script that
checks the job's cancel mark first (no extra round trip while text flows), and while the
backend is silent the mark is polled. A cancelled job's backend call is aborted by closing
its connection; nothing more is written.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import aclosing

from api_router.backends.base import Backend, BackendError
from api_router.chat import Completion, StreamPiece
from api_router.chat_tools import ToolCallDelta
from api_router.dispatch.protocol import (
    KEEPALIVE_S,
    ChunkData,
    ErrorData,
    Event,
    Job,
    JobPayload,
    chunk,
    done,
    job_failed,
    keepalive,
)
from api_router.worker.job_stream import JobStream

log = logging.getLogger(__name__)

# How long a silent backend may go before the cancel mark is looked at (one EXISTS).
CANCEL_POLL_S = 0.2
# A chunk event holds at most about this much text, however far the writer fell behind.
MAX_CHUNK_CHARS = 16_384

Piece = StreamPiece | BackendError


async def stream_answer(
    job: Job, node: str, backend: Backend, jobs: JobStream, timeout_s: float
) -> Event | None:
    """Write the job's ``chunk`` events and return its last event (``done`` or ``error``)
    for the caller to write; ``None`` when the gateway cancelled the job or is gone."""
    pieces: asyncio.Queue[Piece] = asyncio.Queue()
    payload = job.payload
    assert isinstance(payload, JobPayload)  # only chat jobs stream (the agent sees to it)
    stream = backend.stream(job.model, payload.messages, payload.options, timeout_s)
    reader = asyncio.create_task(_read(stream, pieces))
    try:
        return await _relay(job, node, jobs, pieces)
    finally:
        # Closes the backend's connection when we stop early (cancelled, gateway gone).
        reader.cancel()
        await asyncio.wait({reader})


async def _read(stream: AsyncIterator[StreamPiece], pieces: asyncio.Queue[Piece]) -> None:
    try:
        async with aclosing(stream) as answer:  # type: ignore[type-var]  # an async generator
            async for piece in answer:
                pieces.put_nowait(piece)
    except BackendError as exc:
        pieces.put_nowait(exc)
    except Exception:
        # A bug in an adapter: without a final piece the writer would send keepalives
        # until the deadline. End the stream now and leave the trace in the log.
        log.exception("backend stream failed")
        pieces.put_nowait(BackendError("backend_error", "the worker failed", retryable=False))


async def _relay(
    job: Job, node: str, jobs: JobStream, pieces: asyncio.Queue[Piece]
) -> Event | None:
    loop = asyncio.get_running_loop()
    seq = 0
    last_write = loop.time()
    held: Piece | None = None  # a piece that starts the next chunk
    while True:
        if held is not None:
            first, held = held, None
        else:
            try:
                async with asyncio.timeout(CANCEL_POLL_S):
                    first = await pieces.get()
            except TimeoutError:
                if loop.time() - last_write >= KEEPALIVE_S:
                    seq += 1
                    if not await write_unless_abandoned(jobs, job, keepalive(job, node, seq)):
                        return None
                    last_write = loop.time()
                elif await jobs.cancelled(job):
                    log.info("job cancelled by the gateway", extra={"request_id": job.id})
                    return None
                continue
        data, after = _take_ready(first, pieces)
        if data is not None:
            seq += 1
            if not await write_unless_abandoned(jobs, job, chunk(job, node, seq, data)):
                return None
            last_write = loop.time()
        if isinstance(after, Completion):
            return done(job, node, seq + 1, after)
        if isinstance(after, BackendError):
            error = ErrorData(after.reason, after.message, after.retryable)
            return job_failed(job, node, seq + 1, error)
        held = after


def _take_ready(
    first: Piece, pieces: asyncio.Queue[Piece]
) -> tuple[ChunkData | None, Piece | None]:
    """One chunk of the output pieces already waiting, starting with ``first``: text (up to
    ``MAX_CHUNK_CHARS``) or tool-call pieces, one kind per chunk so that their order holds;
    and the piece that ended it, if one did (the final one, or one of the other kind)."""
    texts: list[str] = []
    calls: list[ToolCallDelta] = []
    size = 0
    piece: Piece | None = first
    while (isinstance(piece, str) and not calls) or (
        isinstance(piece, ToolCallDelta) and not texts
    ):
        if isinstance(piece, str):
            texts.append(piece)
            size += len(piece)
        else:
            calls.append(piece)
        if size >= MAX_CHUNK_CHARS or pieces.empty():
            piece = None
            break
        piece = pieces.get_nowait()
    if texts:
        return ChunkData("".join(texts), tokens=len(texts)), piece
    if calls:
        return ChunkData("", tokens=len(calls), tool_calls=calls), piece
    return None, piece


async def write_unless_abandoned(jobs: JobStream, job: Job, event: Event) -> bool:
    """Write a ``chunk`` (text or keepalive); False when the gateway cancelled the job or
    is gone, which the caller takes as the end of the job."""
    outcome = await jobs.emit(job, event)
    if outcome == "cancelled":
        log.info("job cancelled by the gateway", extra={"request_id": job.id})
    elif outcome == "gateway_gone":
        log.info("gateway gone; stream stopped", extra={"request_id": job.id})
    return outcome == "written"
