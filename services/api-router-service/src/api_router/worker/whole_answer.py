"""A whole (not streamed) answer on the worker, a completion or embeddings: the backend
call runs while the worker writes a keepalive every ``KEEPALIVE_S``, so that the gateway
can tell a slow backend from a dead worker and hand the job of a dead one to another node.

Each keepalive is an empty ``chunk`` written by the script that checks the job's cancel
mark first (``emit.lua``): a job its gateway abandoned (timed out, taken for lost, shut
down) is noticed within ``KEEPALIVE_S`` and its backend call aborted, at no extra round
trip. A keepalive that Redis cannot take is skipped: the answer may still get through.
"""

from __future__ import annotations

import asyncio
import logging

from api_router.backends.base import Backend, BackendError
from api_router.chat import Completion
from api_router.dispatch.protocol import (
    KEEPALIVE_S,
    EmbedPayload,
    ErrorData,
    Event,
    Job,
    done,
    job_failed,
    keepalive,
)
from api_router.embeddings import Embeddings
from api_router.errors import StoreUnavailable
from api_router.worker.job_stream import JobStream
from api_router.worker.streamed_answer import write_unless_abandoned

log = logging.getLogger(__name__)


async def complete_answer(
    job: Job, node: str, backend: Backend, jobs: JobStream, timeout_s: float
) -> Event | None:
    """The job's last event (``done`` or ``error``) for the caller to write; ``None`` when
    the gateway cancelled the job or is gone."""
    call = asyncio.create_task(_call(job, backend, timeout_s))
    seq = 0
    try:
        while not (await asyncio.wait({call}, timeout=KEEPALIVE_S))[0]:
            seq += 1
            try:
                if not await write_unless_abandoned(jobs, job, keepalive(job, node, seq)):
                    return None
            except StoreUnavailable:
                log.warning("keepalive not written", extra={"request_id": job.id})
        try:
            answer = call.result()
        except BackendError as exc:
            error = ErrorData(exc.reason, exc.message, exc.retryable)
            return job_failed(job, node, seq + 1, error)
        return done(job, node, seq + 1, answer)
    finally:
        if not call.done():  # abandoned: close the backend's connection
            call.cancel()
            await asyncio.wait({call})


async def _call(job: Job, backend: Backend, timeout_s: float) -> Completion | Embeddings:
    payload = job.payload
    if isinstance(payload, EmbedPayload):
        return await backend.embed(job.model, payload.input, payload.dimensions, timeout_s)
    return await backend.chat(job.model, payload.messages, payload.options, timeout_s)
