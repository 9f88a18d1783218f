"""Hands a job to one node and waits for its answer: one attempt of the stream protocol.

One Redis round trip puts the job on the node's stream; the replica's :class:`ReplyReader`
wakes the request when the worker's events arrive. A job that is not accepted in time, or
not done by its deadline, or whose streaming client left, is marked cancelled so the
worker drops (or aborts) it instead of answering nobody. How an attempt failed
(:class:`AttemptFailed`) tells the failover loop (``dispatch/failover.py``) whether
another node may be tried.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from api_router.chat import Completion
from api_router.config.settings import DispatchSettings, StreamSettings
from api_router.dispatch.protocol import Event, Job, ProtocolError
from api_router.dispatch.reply_reader import ReplyReader, ReplyWaiter
from api_router.dispatch.streamed_job import DispatchObserver, Outcome, StreamedJob
from api_router.errors import ApiError, StoreUnavailable
from api_router.keyspace import WORKER_GROUP, Keyspace
from api_router.redis_store import Redis, lua_script, store_errors
from api_router.routing.node_health import NodeHealth

log = logging.getLogger(__name__)


# Worker error reasons never retried whatever the worker says: the deadline has passed, or
# the job itself is broken and would fail on every node.
_NEVER_RETRIED = frozenset({"expired", "malformed_job"})


class AttemptFailed(ApiError):
    """One attempt on one node failed before any output reached the client.

    ``retryable``: another node may be tried; ``node_fault``: it counts against the node's
    circuit breaker (a failure of the node, not of the request)."""

    accepted = True

    def __init__(self, code: str, message: str, *, retryable: bool, node_fault: bool) -> None:
        super().__init__(code, message)
        self.retryable = retryable
        self.node_fault = node_fault


class JobNotAccepted(AttemptFailed):
    """The job failed before any worker accepted it: nothing ran, so admission refunds all."""

    accepted = False


class NodeFull(JobNotAccepted):
    """The node's backlog is at its limit: skipped for the next candidate, not an attempt."""

    def __init__(self, node_id: str) -> None:
        super().__init__("no_capacity", f"node {node_id} is full", retryable=True, node_fault=False)


@dataclass(frozen=True, slots=True)
class Dispatched:
    """A finished job and the router's own clock readings (``time.perf_counter``)."""

    node: NodeHealth
    completion: Completion
    submitted_at: float
    accepted_at: float
    done_at: float


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

    async def dispatch(self, job: Job, node: NodeHealth, observe: DispatchObserver) -> Dispatched:
        waiter = self._replies.register(job.id, job.attempt)
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

    async def stream(self, job: Job, node: NodeHealth, observe: DispatchObserver) -> StreamedJob:
        """Submit a streamed job and return once a worker has accepted it, so that a job
        nobody takes is still an ordinary HTTP error (and may go to another node). The
        caller reads the events from the returned ``StreamedJob`` and must ``close`` it."""
        waiter = self._replies.register(job.id, job.attempt, self._stream_settings.buffer_events)
        try:
            submitted_at = await self._submit(job, node)
            try:
                accepted_at = await self._await_accepted(job, node, waiter, submitted_at)
            except ApiError as exc:
                observe(node.node_id, exc.code, time.perf_counter() - submitted_at)
                raise
        except BaseException:
            self._replies.unregister(job.id)
            raise
        times = (submitted_at, accepted_at)
        return StreamedJob(
            job, node, waiter, self._stream_settings, times, self._release, self._stream_ended
        )

    async def _await_accepted(
        self, job: Job, node: NodeHealth, waiter: ReplyWaiter, submitted_at: float
    ) -> float:
        deadline = submitted_at + (job.deadline_ms / 1000 - time.time())
        timeout = min(self._settings.accept_timeout_s, deadline - time.perf_counter())
        try:
            event = await waiter.next(timeout)
        except TimeoutError:
            self._cancel(job)
            raise _not_accepted_in_time(node) from None
        if event.type == "error":
            raise _upstream_error(event, JobNotAccepted)
        if event.type != "accepted":  # the worker writes `accepted` before anything else
            self._cancel(job)
            raise JobNotAccepted(
                "upstream_error",
                f"node {node.node_id} did not accept the job first",
                retryable=False,
                node_fault=True,
            )
        return time.perf_counter()

    def _release(self, job: Job, cancel: bool) -> None:
        self._replies.unregister(job.id)
        if cancel:
            self._cancel(job)

    async def _submit(self, job: Job, node: NodeHealth) -> float:
        args = [self._settings.node_backlog_limit, WORKER_GROUP, *_flatten(job.to_fields())]
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
        accepted_at = None
        # The job's deadline is wall-clock (it travels to the worker); wait on our own clock.
        deadline = submitted_at + (job.deadline_ms / 1000 - time.time())
        while True:
            now = time.perf_counter()
            if accepted_at is None:
                timeout = min(self._settings.accept_timeout_s, deadline - now)
            else:
                timeout = deadline - now
            try:
                event = await waiter.next(timeout)
            except TimeoutError:
                self._cancel(job)
                if accepted_at is None:
                    raise _not_accepted_in_time(node) from None
                raise AttemptFailed(
                    "upstream_timeout",
                    f"node {node.node_id} did not finish in time",
                    retryable=False,
                    node_fault=True,
                ) from None
            if event.type == "accepted":
                accepted_at = accepted_at or time.perf_counter()
            elif event.type == "done":
                done_at = time.perf_counter()
                return Dispatched(
                    node, _completion(event), submitted_at, accepted_at or done_at, done_at
                )
            elif event.type == "error":
                # Before `done` nothing reached the client: a retryable error may go elsewhere.
                raise _upstream_error(event, AttemptFailed if accepted_at else JobNotAccepted)

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


def _completion(event: Event) -> Completion:
    try:
        return event.completion()
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


def _upstream_error(event: Event, kind: type[AttemptFailed]) -> AttemptFailed:
    """The worker's error event; retryable when the worker says so (a node-side failure),
    except for the reasons in ``_NEVER_RETRIED``."""
    try:
        error = event.error()
    except ProtocolError:
        return kind(
            "upstream_error",
            f"node {event.node} failed with an unreadable error",
            retryable=False,
            node_fault=True,
        )
    retryable = error.retryable and error.reason not in _NEVER_RETRIED
    return kind(
        "upstream_error",
        f"node {event.node} failed: {error.reason}: {error.message}",
        retryable=retryable,
        node_fault=retryable,
    )
