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
import logging
import time
from collections.abc import Callable, Mapping

from api_router.backends.base import BackendError
from api_router.chat import Completion
from api_router.config.settings import StreamSettings
from api_router.dispatch.attempt_failure import (
    AttemptFailed,
    JobNotAccepted,
    NodeFull,
    attempt_lost,
    backend_failure,
)
from api_router.dispatch.direct_nodes import DirectNodes, DirectTarget
from api_router.dispatch.direct_stream import DirectStream
from api_router.dispatch.dispatcher import Dispatched
from api_router.dispatch.protocol import EmbedPayload, Job
from api_router.dispatch.streamed_job import DispatchObserver, Outcome
from api_router.embeddings import Embeddings
from api_router.errors import ApiError, ShuttingDown
from api_router.routing.node_health import NodeHealth
from api_router.routing.snapshot import NodeState

log = logging.getLogger(__name__)


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
        # Whole answers in flight: the task waiting on each and its node.
        self._calls: dict[asyncio.Task[object], str] = {}
        # Calls cancelled from outside, with the error their request gets.
        self._interrupted: dict[asyncio.Task[object], ApiError] = {}
        self._streams: set[DirectStream] = set()
        self._stopped: ShuttingDown | None = None

    def stop(self, error: ShuttingDown) -> None:
        """Shutdown: end every call in flight with ``error``; refuse new ones."""
        self._stopped = error
        for call in self._calls:
            self._interrupt(call, error)
        for stream in self._streams:
            stream.interrupt(error)

    def check_lost(self, states: Mapping[str, NodeState]) -> int:
        """Interrupt the calls in flight to nodes that stopped answering their probes
        (a direct node's entry is ``unavailable`` only then: drains are overrides), went
        stale or left the registry, as a worker's lost attempt is: a whole answer fails
        over, a stream ends with the error. How many there were.

        A hung backend would otherwise hold its calls until their deadline: a whole
        answer's first byte is its last, so no read timeout can tell it from a long
        generation, but its probes (a model list) can."""
        lost = 0
        for call, node_id in list(self._calls.items()):
            why = _why_lost(states.get(node_id))
            if why is not None and call not in self._interrupted:
                self._interrupt(call, attempt_lost(node_id, why))
                lost += 1
        for stream in self._streams:
            why = _why_lost(states.get(stream.node.node_id))
            if why is not None and not stream.finished:
                stream.interrupt(attempt_lost(stream.node.node_id, why))
                lost += 1
        if lost:
            log.warning("direct calls lost", extra={"calls": lost})
        return lost

    def _interrupt(self, call: asyncio.Task[object], error: ApiError) -> None:
        self._interrupted[call] = error
        call.cancel()

    async def dispatch(self, job: Job, node: NodeHealth, observe: DispatchObserver) -> Dispatched:
        timeout_s = _time_left(job, node)
        target = self._take(node)
        submitted_at = time.perf_counter()
        task = asyncio.current_task()
        if task is not None:
            self._calls[task] = node.node_id
        try:
            answer = await _call(target, job, timeout_s)
        except BackendError as exc:
            failure = backend_failure(node.node_id, exc)
            observe(node.node_id, failure.code, time.perf_counter() - submitted_at)
            raise failure from None
        except asyncio.CancelledError:
            error = self._interrupted.pop(task, None) if task is not None else None
            if error is None or task is None or task.uncancel() > 0:
                raise  # the request itself was cancelled
            observe(node.node_id, error.code, time.perf_counter() - submitted_at)
            raise error from None
        finally:
            if task is not None:
                self._calls.pop(task, None)
                self._interrupted.pop(task, None)
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


def _why_lost(state: NodeState | None) -> str | None:
    if state is None:
        return "left the health registry"
    if state == "stale":
        return "is no longer probed"
    if state == "unavailable":
        return "stopped answering its probes"
    return None
