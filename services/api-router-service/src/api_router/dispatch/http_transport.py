"""The direct transport: one attempt on a ``transport: http`` node is one call of its
backend adapter (``backends/``) through this gateway's pooled session, bounded by the
request's deadline. No Redis, no worker: the answer comes back on the same connection.

Failures are the attempt failures of the stream transport (``attempt_failure.py``), so
the failover loop, breakers and the relay treat both kinds of node alike: a node at its
``max_concurrency`` is skipped as full, an unreachable or failing backend may be retried
elsewhere, a refusal of the request itself (HTTP 400/422) is answered as it is.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from api_router.backends.base import BackendError
from api_router.chat import Completion
from api_router.config.settings import StreamSettings
from api_router.dispatch.attempt_failure import (
    AttemptFailed,
    JobNotAccepted,
    NodeFull,
    backend_failure,
)
from api_router.dispatch.direct_nodes import DirectNodes, DirectTarget
from api_router.dispatch.direct_stream import DirectStream
from api_router.dispatch.dispatcher import Dispatched
from api_router.dispatch.protocol import EmbedPayload, Job
from api_router.dispatch.streamed_job import DispatchObserver, Outcome
from api_router.embeddings import Embeddings
from api_router.errors import ShuttingDown
from api_router.routing.node_health import NodeHealth


class HttpTransport:
    def __init__(
        self,
        nodes: DirectNodes,
        stream_settings: StreamSettings,
        stream_ended: Callable[[str, Outcome], None] | None = None,
    ) -> None:
        """``stream_ended``: told (node, outcome) when a stream ends (its breaker)."""
        self.nodes = nodes
        self._buffer = stream_settings.buffer_events
        self._stream_ended = stream_ended
        self._calls: set[asyncio.Task[object]] = set()  # whole answers in flight
        self._streams: set[DirectStream] = set()
        self._stopped: ShuttingDown | None = None

    def stop(self, error: ShuttingDown) -> None:
        """Shutdown: end every call in flight with ``error``; refuse new ones."""
        self._stopped = error
        for call in self._calls:
            call.cancel()
        for stream in self._streams:
            stream.interrupt(error)

    async def dispatch(self, job: Job, node: NodeHealth, observe: DispatchObserver) -> Dispatched:
        timeout_s = _time_left(job, node)
        target = self._take(node)
        submitted_at = time.perf_counter()
        task = asyncio.current_task()
        if task is not None:
            self._calls.add(task)
        try:
            answer = await _call(target, job, timeout_s)
        except BackendError as exc:
            failure = backend_failure(node.node_id, exc)
            observe(node.node_id, failure.code, time.perf_counter() - submitted_at)
            raise failure from None
        except asyncio.CancelledError:
            if self._stopped is None or task is None or task.uncancel() > 0:
                raise  # the request itself was cancelled
            observe(node.node_id, self._stopped.code, time.perf_counter() - submitted_at)
            raise self._stopped from None
        finally:
            self._calls.discard(task)
            target.give_back()
        done_at = time.perf_counter()
        observe(node.node_id, "done", done_at - submitted_at)
        return Dispatched(node, answer, submitted_at, submitted_at, done_at)

    async def stream(
        self, job: Job, node: NodeHealth, observe: DispatchObserver, overflowed: asyncio.Event
    ) -> DirectStream:
        """Start the backend's stream; return once its first piece has arrived (see
        ``direct_stream.py``). The caller reads it and must ``close`` it."""
        payload = job.payload
        if isinstance(payload, EmbedPayload):  # routing never streams embeddings
            raise TypeError("an embeddings job is never streamed")
        timeout_s = _time_left(job, node)
        target = self._take(node)
        answer = target.backend.stream(job.model, payload.messages, payload.options, timeout_s)

        def release(stream: DirectStream) -> None:
            self._streams.discard(stream)
            target.give_back()

        stream = DirectStream(
            job, node, answer, self._buffer, overflowed, release, self._stream_ended
        )
        self._streams.add(stream)
        try:
            await stream.opened()
        except AttemptFailed as exc:
            stream.abandon()  # the failover loop gives the node's breaker its verdict
            observe(node.node_id, exc.code, time.perf_counter() - stream.submitted_at)
            raise
        except BaseException:
            stream.abandon()
            raise
        return stream

    def _take(self, node: NodeHealth) -> DirectTarget:
        if self._stopped is not None:
            raise self._stopped
        target = self.nodes.get(node.node_id)
        if target is None:  # another replica's node, not configured here
            raise JobNotAccepted(
                "no_capacity",
                f"node {node.node_id} is not a direct node of this gateway",
                retryable=True,
                node_fault=False,
            )
        if not target.take():
            raise NodeFull(node.node_id)
        return target


async def _call(target: DirectTarget, job: Job, timeout_s: float) -> Completion | Embeddings:
    payload = job.payload
    if isinstance(payload, EmbedPayload):
        return await target.backend.embed(job.model, payload.input, payload.dimensions, timeout_s)
    return await target.backend.chat(job.model, payload.messages, payload.options, timeout_s)


def _time_left(job: Job, node: NodeHealth) -> float:
    """The backend call's bound: what is left of the request's deadline."""
    left = job.deadline_ms / 1000 - time.time()
    if left <= 0:
        raise AttemptFailed(
            "upstream_timeout",
            f"no time was left to call node {node.node_id}",
            retryable=False,
            node_fault=False,
        )
    return left
