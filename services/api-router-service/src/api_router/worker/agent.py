"""The worker agent: one per inference node.

It reads its node's jobs (at most ``max_concurrency`` at once), answers each on the reply
stream the job names (``accepted``; ``chunk`` events, text for a streamed job and
keepalives for any job while its backend is silent; then ``done`` or ``error``), and
acknowledges a job only once it is answered. Jobs of a crashed worker of the same node
are reclaimed. On stop it takes no new jobs, finishes what it runs within a grace period,
answers the rest with ``error/shutting_down`` and leaves the health registry.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from opentelemetry import trace
from opentelemetry.trace import SpanKind

from api_router.backends.base import Backend
from api_router.dispatch.protocol import (
    ErrorData,
    ErrorReason,
    Event,
    Job,
    ProtocolError,
    accepted,
    failed,
    job_failed,
    reply_address,
)
from api_router.errors import StoreUnavailable
from api_router.keyspace import Keyspace
from api_router.redis_store import MissingConsumerGroup, Redis
from api_router.task_cancellation import stop_task
from api_router.telemetry.tracing import parent_context
from api_router.telemetry.worker_metrics import WorkerMetrics
from api_router.worker import system_probe
from api_router.worker.health_reporter import HealthReporter
from api_router.worker.job_stream import EmitOutcome, Entry, JobStream
from api_router.worker.streamed_answer import stream_answer
from api_router.worker.whole_answer import complete_answer

log = logging.getLogger(__name__)

_RETRY_DELAY_S = 0.5
# A job read within this long of being queued is "fresh": its gateway is still waiting for
# it (a gateway cancels a job after its accept timeout, seconds, or when its client leaves).
_FRESH_MS = 250

Action = Callable[[], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    node_id: str
    pool: str
    max_concurrency: int = 2
    health_interval_s: float = 5.0
    # A job whose worker has not renewed it for this long is taken over (crashed worker).
    reclaim_idle_s: float = 15.0
    # On stop, in-flight jobs get this long to finish.
    drain_grace_s: float = 30.0
    backend_timeout_s: float = 300.0
    read_block_ms: int = 500
    thermal_zones: Path = system_probe.THERMAL_ZONES


class WorkerAgent:
    def __init__(
        self,
        settings: WorkerSettings,
        redis: Redis,
        keys: Keyspace,
        backend: Backend,
        tracer: trace.Tracer | None = None,
        metrics: WorkerMetrics | None = None,
    ) -> None:
        self._settings = settings
        self._backend = backend
        self._tracer = tracer or trace.NoOpTracer()
        self.metrics = metrics or WorkerMetrics(settings.node_id, "api-router-worker")
        self.consumer = f"{settings.node_id}-{secrets.token_hex(4)}"
        self._jobs = JobStream(redis, keys, settings.node_id, self.consumer)
        self._health = HealthReporter(
            redis,
            keys,
            settings.node_id,
            settings.pool,
            settings.max_concurrency,
            backend,
            thermal_zones=settings.thermal_zones,
        )
        self._inflight: dict[bytes, asyncio.Task[None]] = {}
        self._running: dict[bytes, Job] = {}  # the decoded job of each task in flight
        self._slot_freed = asyncio.Event()
        self._accepting = True
        self._reported_at: float | None = None  # monotonic time of the last health beat
        self.metrics.observe_inflight(lambda: len(self._inflight))

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set, then drain and leave."""
        await self._publish_health()
        background = [
            asyncio.create_task(
                self._every(self._settings.health_interval_s, self._publish_health)
            ),
            asyncio.create_task(self._every(self._settings.reclaim_idle_s / 3, self._renew)),
        ]
        try:
            await self._consume(stop)
        finally:
            # Stop: 1. tell gateways to send nothing more; 2. let running jobs finish;
            # 3. stop the heartbeats; 4. leave the registry and the consumer group.
            self._accepting = False
            await self._quietly(self._publish_health)
            await self._drain()
            for task in background:
                await stop_task(task)
            await self._quietly(self._health.withdraw)
            await self._quietly(self._jobs.leave)
            log.info("worker stopped", extra={"node_id": self._settings.node_id})

    async def _consume(self, stop: asyncio.Event) -> None:
        reclaim_idle_ms = int(self._settings.reclaim_idle_s * 1000)
        next_reclaim = 0.0
        while not stop.is_set():
            free = self._settings.max_concurrency - len(self._inflight)
            if free <= 0:
                self._slot_freed.clear()
                await _first_of(self._slot_freed, stop, timeout_s=1.0)
                continue
            try:
                entries: list[Entry] = []
                if time.monotonic() >= next_reclaim:
                    entries = await self._jobs.claim_abandoned(free, reclaim_idle_ms)
                    self.metrics.reclaimed(len(entries))
                    next_reclaim = time.monotonic() + self._settings.reclaim_idle_s / 3
                if not entries:
                    entries = await self._jobs.read(free, self._settings.read_block_ms)
            except StoreUnavailable:
                log.warning("job stream unreadable; retrying")
                await asyncio.sleep(_RETRY_DELAY_S)
                continue
            except MissingConsumerGroup:
                log.warning("consumer group missing; recreating it")
                await self._quietly(self._jobs.open)
                continue
            for entry in entries:
                if entry[0] not in self._inflight:  # reclaimed from ourselves: still running
                    self._start(entry)

    def _start(self, entry: Entry) -> None:
        entry_id, fields = entry
        task = asyncio.create_task(self._run_job(entry_id, fields))
        self._inflight[entry_id] = task
        task.add_done_callback(lambda _: self._finished(entry_id))

    def _finished(self, entry_id: bytes) -> None:
        self._inflight.pop(entry_id, None)
        self._running.pop(entry_id, None)
        self._slot_freed.set()

    async def _run_job(self, entry_id: bytes, fields: dict[bytes, bytes]) -> None:
        try:
            job = Job.from_fields(fields)
        except ProtocolError as exc:
            reason = str(exc)
            log.error("malformed job", extra={"entry": entry_id, "reason": reason})
            await self._quietly(lambda: self._reject_malformed(entry_id, fields, reason))
            return
        self._running[entry_id] = job
        try:
            with self._tracer.start_as_current_span(
                "worker.job",
                context=parent_context(job.traceparent),
                kind=SpanKind.CONSUMER,
                attributes={
                    "api_router.node_id": self._settings.node_id,
                    "gen_ai.request.model": job.model,
                    "api_router.request_id": job.id,
                },
            ):
                started = time.perf_counter()
                event = await self._answer(job, fresh=_age_ms(entry_id) < _FRESH_MS)
                if event is not None:
                    await self._reply(job, event, entry_id)
                    _answered(job, event, started)
            if event is None:
                await self._jobs.ack(entry_id)
        except StoreUnavailable:
            # Left pending: this worker (or another of the node) reclaims it once idle.
            log.warning(
                "redis unavailable mid-job; it will be reclaimed", extra={"request_id": job.id}
            )

    async def _answer(self, job: Job, fresh: bool) -> Event | None:
        """The job's last event (``done`` or ``error``) to write; None when it was dropped
        (cancelled, or its gateway gone)."""
        node = self._settings.node_id
        remaining_s = job.deadline_ms / 1000 - time.time()
        if remaining_s <= 0:
            return _error(job, node, "expired", "the job's deadline passed")
        timeout_s = min(self._settings.backend_timeout_s, remaining_s)
        if not fresh or (job.stream and job.operation == "chat"):
            # `accepted` first: it finds out whether the job was cancelled before the
            # backend is asked, and a stream's first chunk must follow it.
            if not await self._accept(job):
                return None
            answer = stream_answer if job.stream and job.operation == "chat" else complete_answer
            event = await answer(job, node, self._backend, self._jobs, timeout_s)
        else:
            # A fresh whole job (its gateway is still waiting): the backend call starts
            # while `accepted` is on its way, so that round trip no longer delays the answer.
            call = asyncio.create_task(
                complete_answer(job, node, self._backend, self._jobs, timeout_s)
            )
            taken = False
            try:
                taken = await self._accept(job, fresh=True)
            finally:
                if not taken:  # cancelled, its gateway gone, or Redis away: stop the call
                    await stop_task(call)
            if not taken:
                return None
            event = await call
        if event is None:  # cancelled by its gateway, or the gateway is gone
            self.metrics.dropped(job.model, "cancelled")
        return event

    async def _accept(self, job: Job, fresh: bool = False) -> bool:
        """Write `accepted`; False (logged and counted) when the job's gateway cancelled it
        or is gone. A fresh job's gateway is still waiting and is not asked whether it
        cancelled (two Redis calls fewer): a client that left at once has its job's
        backend call stopped at the first keepalive (``KEEPALIVE_S``) instead."""
        event = accepted(job, self._settings.node_id, self.consumer)
        if fresh:
            written = await self._jobs.reply(job.reply_to, event)
            outcome: EmitOutcome = "written" if written else "gateway_gone"
        else:
            outcome = await self._jobs.emit(job, event)
        if outcome != "written":
            log.info("job skipped", extra={"request_id": job.id, "outcome": outcome})
            self.metrics.dropped(job.model, outcome)
            return False
        self.metrics.accepted(job.model)
        return True

    async def _reply(self, job: Job, event: Event, entry_id: bytes) -> None:
        """Write the job's last event and acknowledge its entry, in one round trip."""
        if not await self._jobs.reply(job.reply_to, event, ack=entry_id):
            log.info("gateway gone; answer dropped", extra={"request_id": job.id})
            self.metrics.dropped(job.model, "gateway_gone")
            return
        self.metrics.answered(job.model, event)

    async def _reject_malformed(
        self, entry_id: bytes, fields: dict[bytes, bytes], reason: str
    ) -> None:
        address = reply_address(fields)
        if address is not None:
            job_id, attempt, reply_to = address
            error = ErrorData("malformed_job", reason)
            event = failed(job_id, attempt, self._settings.node_id, 1, error)
            await self._jobs.reply(reply_to, event)
            self.metrics.answered("", event)
        await self._jobs.ack(entry_id)

    async def _finish_shutting_down(self, entry_id: bytes, job: Job) -> None:
        node = self._settings.node_id
        error = _error(job, node, "shutting_down", "the worker stopped", retryable=True)
        await self._reply(job, error, entry_id)

    async def _drain(self) -> None:
        if not self._inflight:
            return
        log.info("draining", extra={"inflight": len(self._inflight)})
        _, unfinished = await asyncio.wait(
            list(self._inflight.values()), timeout=self._settings.drain_grace_s
        )
        # The grace is over: the jobs still running are stopped, then answered
        # `shutting_down` from here rather than leave their clients waiting. From here: a
        # cancellation that lands in a Redis call can be swallowed by redis-py
        # (redis/redis-py#2028), so a task is cancelled until it has ended, and an answer
        # written from its own except clause could itself be cut off that way.
        stopped = [
            (entry_id, self._running.get(entry_id))
            for entry_id, task in list(self._inflight.items())
            if task in unfinished
        ]
        await asyncio.gather(*(stop_task(task) for task in unfinished), return_exceptions=True)
        for entry_id, job in stopped:
            if job is not None:
                await self._quietly(partial(self._finish_shutting_down, entry_id, job))

    async def _publish_health(self) -> None:
        # A node only advertises itself with a stream to receive on: Redis may have lost
        # the group (a restart without persistence) since the last beat.
        await self._jobs.open()
        health = await self._health.publish(len(self._inflight), self._accepting)
        self._reported_at = time.monotonic()
        self.metrics.published(health)
        self.metrics.backlog(*await self._jobs.backlog())

    def status(self) -> tuple[bool, dict[str, object]]:
        """For ``/healthz``: reporting (its last health beat reached Redis within three
        intervals) and accepting jobs."""
        reported = self._reported_at
        fresh_s = 3 * self._settings.health_interval_s
        reporting = reported is not None and time.monotonic() - reported <= fresh_s
        body: dict[str, object] = {
            "status": "ok" if reporting and self._accepting else "degraded",
            "node_id": self._settings.node_id,
            "reporting": reporting,
            "accepting": self._accepting,
            "inflight": len(self._inflight),
        }
        return reporting and self._accepting, body

    async def _renew(self) -> None:
        await self._jobs.renew(list(self._inflight))
        await self._jobs.trim()

    async def _every(self, interval_s: float, action: Action) -> None:
        while True:
            await asyncio.sleep(interval_s)
            await self._quietly(action)

    @staticmethod
    async def _quietly(action: Action) -> None:
        """Run a housekeeping step; Redis being away is logged, not fatal."""
        try:
            await action()
        except StoreUnavailable as exc:
            log.warning("housekeeping step failed", extra={"reason": exc.message})


def _answered(job: Job, event: Event, started: float) -> None:
    log.info(
        "job answered",
        extra={
            "request_id": job.id,
            "model": job.model,
            "event": event.type,
            "duration_ms": round((time.perf_counter() - started) * 1000, 3),
            "traceparent": job.traceparent,
        },
    )


def _age_ms(entry_id: bytes) -> float:
    """How long ago the job was queued, from its entry id (Redis's clock, in ms)."""
    queued_ms = int(entry_id.split(b"-", 1)[0])
    return time.time() * 1000 - queued_ms


def _error(
    job: Job, node: str, reason: ErrorReason, message: str, retryable: bool = False
) -> Event:
    return job_failed(job, node, 1, ErrorData(reason, message, retryable))


async def _first_of(*events: asyncio.Event, timeout_s: float) -> None:
    waiters = [asyncio.create_task(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
