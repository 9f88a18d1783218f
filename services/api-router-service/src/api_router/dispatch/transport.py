"""The seam between routing and the nodes: one transport per kind of node, picked by the
node's ``transport`` (its health entry says it).

- ``streams`` (``dispatcher.py``): the job goes onto the node's Redis stream and its
  worker answers on this replica's reply stream (edge nodes behind NAT).
- ``http`` (``http_transport.py``): the gateway calls the node's backend itself through
  its pooled client (reachable servers: vLLM, Ollama on a GPU box).

Both answer the same two calls, fail in the same terms (``attempt_failure.py``) and hand
a stream to the relay as a ``JobStream``, so that everything above (failover, breakers,
usage, audit, the response) is one code path for both. While Redis is away a streams node
is skipped at once (``NodeOutOfReach``) and the plan's direct nodes serve: local-only mode.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from api_router.chat import StreamPiece
from api_router.dispatch.attempt_failure import NodeOutOfReach
from api_router.dispatch.dispatcher import Dispatched, Dispatcher
from api_router.dispatch.http_transport import HttpTransport
from api_router.dispatch.protocol import Job
from api_router.dispatch.streamed_job import DispatchObserver, Outcome
from api_router.errors import ShuttingDown, StoreUnavailable
from api_router.routing.node_health import NodeHealth


class JobStream(Protocol):
    """A streamed answer once its node has taken it, as the relay reads it."""

    node: NodeHealth
    submitted_at: float  # time.perf_counter
    accepted_at: float
    tokens: int  # completion tokens so far
    overflowed: asyncio.Event  # set when the client reads too slowly to keep up

    @property
    def done_at(self) -> float | None: ...

    async def next(self, wait_s: float) -> list[StreamPiece]: ...

    def close(self, outcome: Outcome, observe: DispatchObserver) -> None: ...


class Transports:
    """Both transports behind the two calls the routed request makes."""

    def __init__(self, streams: Dispatcher, direct: HttpTransport) -> None:
        self.streams = streams
        self.direct = direct

    async def dispatch(self, job: Job, node: NodeHealth, observe: DispatchObserver) -> Dispatched:
        if node.transport == "http":
            return await self.direct.dispatch(job, node, observe)
        try:
            return await self.streams.dispatch(job, node, observe)
        except StoreUnavailable as exc:
            raise NodeOutOfReach(node.node_id, exc) from exc

    async def stream(
        self, job: Job, node: NodeHealth, observe: DispatchObserver, overflowed: asyncio.Event
    ) -> JobStream:
        if node.transport == "http":
            return await self.direct.stream(job, node, observe, overflowed)
        try:
            return await self.streams.stream(job, node, observe, overflowed)
        except StoreUnavailable as exc:
            raise NodeOutOfReach(node.node_id, exc) from exc

    def stop(self, error: ShuttingDown) -> None:
        """Shutdown: end every wait with ``error`` and refuse new attempts."""
        self.streams.stop(error)
        self.direct.stop(error)

    async def aclose(self) -> None:
        await self.streams.aclose()
