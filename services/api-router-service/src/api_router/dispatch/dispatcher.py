"""Hands a job to one node and waits for its answer: one attempt of the stream protocol.

One Redis round trip puts the job on the node's stream; the replica's :class:`ReplyReader`
wakes the request when the worker's events arrive. Once accepted, the attempt is watched
(``attempt_watch.py``): a worker that falls silent or a node that leaves ends the wait. A
job that is not accepted in time, not done by its deadline, lost, or whose streaming
client left, is marked cancelled so the worker drops (or aborts) it instead of answering
nobody. How an attempt failed (``attempt_failure.py``) tells the failover loop
(``dispatch/failover.py``) whether another node may be tried.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from api_router.chat import Completion
from api_router.config.settings import DispatchSettings, StreamSettings
from api_router.dispatch.attempt_failure import (
    AttemptFailed,
    JobNotAccepted,
    NodeFull,
    upstream_error,
)
from api_router.dispatch.protocol import LATEST_PROTOCOL, Event, Job, ProtocolError
from api_router.dispatch.reply_reader import ReplyReader, ReplyWaiter
from api_router.dispatch.streamed_job import DispatchObserver, Outcome, StreamedJob
from api_router.embeddings import Embeddings
from api_router.errors import ApiError, ShuttingDown, StoreUnavailable
from api_router.keyspace import WORKER_GROUP, Keyspace
from api_router.redis_store import Redis, lua_script, store_errors
from api_router.routing.node_health import NodeHealth

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Dispatched:
    """A finished job (a chat's completion, or embeddings) and the router's own clock
    readings (``time.perf_counter``)."""

    node: NodeHealth
    answer: Completion | Embeddings
    submitted_at: float
    accepted_at: float
    done_at: float

    @property
    def completion(self) -> Completion:
        if not isinstance(self.answer, Completion):
            raise TypeError("an embeddings job has no completion")
        return self.answer

    @property
    def embeddings(self) -> Embeddings:
        if not isinstance(self.answer, Embeddings):
            raise TypeError("a chat job has no embeddings")
        return self.answer


class Dispatcher:
    def __init__(
        self,
        redis: Redis,
        keys: Keyspace,
        replies: ReplyReader,
        settings: DispatchSettings,
        stream_settings: StreamSettings,
        stream_ended: Callable[[str, Outcome], None] | None = None,
    ) -> None:
        """``stream_ended``: told (node, outcome) when an accepted stream ends."""
        self._redis = redis
        self._stream_ended = stream_ended
        self._keys = keys
        self._replies = replies
        self._settings = settings
        self._stream_settings = stream_settings
        self._bounded_add = redis.register_script(lua_script(__package__, "bounded_add"))
        self._background: set[asyncio.Task[None]] = set()
        self._stopped: ShuttingDown | None = None

    def stop(self, error: ShuttingDown) -> None:
        """Shutdown: end every wait with ``error`` (each request answers it and cancels
        its job) and refuse new attempts."""
        self._stopped = error
        for waiter in self._replies.waiting():
            waiter.interrupt(error)

    async def dispatch(self, job: Job, node: NodeHealth, observe: DispatchObserver) -> Dispatched:
        waiter = self._replies.register(job.id, job.attempt, node.node_id)
        try:
            submitted_at = await self._submit(job, node)
            try:
                dispatched = await self._await_answer(job, node, waiter, submitted_at)
            except ApiError as exc:
                observe(node.node_id, exc.code, time.perf_counter() - submitted_at)
                raise
            observe(node.node_id, "done", dispatched.done_at - submitted_at)
            return dispatched
        finally:
            self._replies.unregister(job.id)

    async def stream(
        self,
        job: Job,
        node: NodeHealth,
        observe: DispatchObserver,
        overflowed: asyncio.Event | None = None,
    ) -> StreamedJob:
        """Submit a streamed job and return once a worker has accepted it, so that a job
        nobody takes is still an ordinary HTTP error (and may go to another node). The
        caller reads the events from the returned ``StreamedJob`` and must ``close`` it.
        ``overflowed``: set when the stream's buffer fills up (one for all its attempts)."""
        buffer = self._stream_settings.buffer_events
        waiter = self._replies.register(job.id, job.attempt, node.node_id, buffer, overflowed)
        try:
            submitted_at = await self._submit(job, node)
            try:
                await self._await_accepted(job, node, waiter, submitted_at)
            except ApiError as exc:
                observe(node.node_id, exc.code, time.perf_counter() - submitted_at)
                raise
        except BaseException:
            self._replies.unregister(job.id)
            raise
        # Workers have always sent keepalives while a stream's backend is silent.
        waiter.watch(self._settings.idle_timeout_s)
        times = (submitted_at, time.perf_counter())
        return StreamedJob(job, node, waiter, times, self._release, self._stream_ended)

    async def _await_accepted(
        self, job: Job, node: NodeHealth, waiter: ReplyWaiter, submitted_at: float
    ) -> Event:
        deadline = submitted_at + (job.deadline_ms / 1000 - time.time())
        timeout = min(self._settings.accept_timeout_s, deadline - time.perf_counter())
        try:
            event = await waiter.next(timeout)
        except TimeoutError:
            self._cancel(job)
            raise _not_accepted_in_time(node) from None
        except ShuttingDown:
            self._cancel(job)
            raise
        if event.type == "error":
            raise upstream_error(event, JobNotAccepted)
        if event.type != "accepted":  # the worker writes `accepted` before anything else
            self._cancel(job)
            raise JobNotAccepted(
                "upstream_error",
                f"node {node.node_id} did not accept the job first",
                retryable=False,
                node_fault=True,
            )
        return event

    def _release(self, job: Job, cancel: bool) -> None:
        self._replies.unregister(job.id)
        if cancel:
            self._cancel(job)

    async def _submit(self, job: Job, node: NodeHealth) -> float:
        if self._stopped is not None:
            raise self._stopped
        # The newest version both sides speak (routing sends a v2 job only to v2 nodes).
        fields = job.to_fields(min(node.protocol, LATEST_PROTOCOL))
        args = [self._settings.node_backlog_limit, WORKER_GROUP, *_flatten(fields)]
        with store_errors("job dispatch"):
            added = await self._bounded_add(keys=[self._keys.job_stream(node.node_id)], args=args)
        if isinstance(added, bytes):
            return time.perf_counter()
        if added == 0:
            log.info("node skipped", extra={"node_id": node.node_id, "reason": "backlog_full"})
            raise NodeFull(node.node_id)
        # The node's stream (or its group) is gone: the node is not receiving.
        raise JobNotAccepted(
            "upstream_error",
            f"node {node.node_id} has no job stream",
            retryable=True,
            node_fault=True,
        )

    async def _await_answer(
        self, job: Job, node: NodeHealth, waiter: ReplyWaiter, submitted_at: float
    ) -> Dispatched:
        accepted = await self._await_accepted(job, node, waiter, submitted_at)
        accepted_at = time.perf_counter()
        waiter.watch(self._idle_limit(accepted))
        # The job's deadline is wall-clock (it travels to the worker); wait on our own clock.
        deadline = submitted_at + (job.deadline_ms / 1000 - time.time())
        while True:
            try:
                event = await waiter.next(deadline - time.perf_counter())
            except TimeoutError:
                self._cancel(job)
                raise AttemptFailed(
                    "upstream_timeout",
                    f"node {node.node_id} did not finish in time",
                    retryable=False,
                    node_fault=True,
                ) from None
            except (AttemptFailed, ShuttingDown):  # lost, or the gateway is shutting down
                self._cancel(job)
                raise
            if event.type == "done":
                done_at = time.perf_counter()
                return Dispatched(node, _answer(job, event), submitted_at, accepted_at, done_at)
            if event.type == "error":
                # Before `done` nothing reached the client: a retryable error may go elsewhere.
                raise upstream_error(event, AttemptFailed)
            # A keepalive `chunk`, or `accepted` again (another worker of the node took the
            # job over): the attempt is alive.

    def _idle_limit(self, accepted: Event) -> float | None:
        """Silence allowed before the attempt is lost; None for a worker that predates
        keepalives for whole answers (it is then lost only when its node leaves)."""
        try:
            announced = accepted.accepted().keepalive_s
        except ProtocolError:
            announced = None
        return None if announced is None else self._settings.idle_timeout_s

    async def aclose(self) -> None:
        """Let pending cancellation marks reach Redis before the client closes."""
        if self._background:
            await asyncio.wait(self._background, timeout=1.0)

    def _cancel(self, job: Job) -> None:
        """Tell the node to drop the job if it has not started it (off the response path)."""
        ttl_ms = max(job.deadline_ms - int(time.time() * 1000), 0) + 60_000
        task = asyncio.create_task(self._mark_cancelled(job.id, job.attempt, ttl_ms))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _mark_cancelled(self, request_id: str, attempt: int, ttl_ms: int) -> None:
        try:
            with store_errors("job cancellation"):
                await self._redis.set(
                    self._keys.cancel(self._replies.stream, request_id, attempt), 1, px=ttl_ms
                )
        except StoreUnavailable:
            log.warning("could not mark job cancelled", extra={"request_id": request_id})


def _flatten(fields: dict[str, str | bytes]) -> list[str | bytes]:
    return [item for pair in fields.items() for item in pair]


def _answer(job: Job, event: Event) -> Completion | Embeddings:
    try:
        return event.embeddings() if job.operation == "embed" else event.completion()
    except ProtocolError:
        raise AttemptFailed(
            "upstream_error",
            f"node {event.node} sent an unreadable answer",
            retryable=False,
            node_fault=True,
        ) from None


def _not_accepted_in_time(node: NodeHealth) -> JobNotAccepted:
    return JobNotAccepted(
        "upstream_timeout",
        f"node {node.node_id} did not accept the job in time",
        retryable=True,
        node_fault=True,
    )
