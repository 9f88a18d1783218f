"""The worker's side of its node's job stream and of the gateways' reply streams.

Jobs are read through the consumer group ``workers``. While a job runs, its worker keeps
renewing its claim (``renew``), so that ``claim_abandoned`` (XAUTOCLAIM) only takes jobs
whose worker stopped renewing: one that crashed or was killed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, cast

from api_router.dispatch.protocol import Event, Job
from api_router.keyspace import WORKER_GROUP, Keyspace
from api_router.redis_store import Redis, ensure_consumer_group, lua_script, store_errors

Entry = tuple[bytes, dict[bytes, bytes]]
EmitOutcome = Literal["written", "cancelled", "gateway_gone"]
_EMIT_OUTCOMES: dict[int, EmitOutcome] = {1: "written", 0: "cancelled", -1: "gateway_gone"}
# A worker trims its node's stream every this many acks (and when its work pauses).
TRIM_EVERY = 16


class JobStream:
    def __init__(self, redis: Redis, keys: Keyspace, node_id: str, consumer: str) -> None:
        self._redis = redis
        self._keys = keys
        self.stream = keys.job_stream(node_id)
        self.consumer = consumer
        self._emit = redis.register_script(lua_script(__package__, "emit"))
        self._ack_and_trim = redis.register_script(lua_script(__package__, "ack_and_trim"))
        self._claim_cursor = "0-0"
        self._untrimmed = 0  # acks since this worker last trimmed the stream

    async def open(self) -> None:
        await ensure_consumer_group(self._redis, self.stream, WORKER_GROUP)

    async def read(self, count: int, block_ms: int) -> list[Entry]:
        """Up to ``count`` new jobs, waiting up to ``block_ms`` for the first."""
        with store_errors("the job stream"):
            found = await self._redis.xreadgroup(
                WORKER_GROUP, self.consumer, {self.stream: ">"}, count=count, block=block_ms
            )
        # With decode_responses=False: [[stream, [(entry id, {field: value})...]]] or None.
        streams = cast(list[tuple[bytes, list[Entry]]] | None, found)
        return list(streams[0][1]) if streams else []

    async def claim_abandoned(self, count: int, min_idle_ms: int) -> list[Entry]:
        """Take over up to ``count`` jobs whose worker stopped renewing them."""
        with store_errors("the job stream"):
            cursor, entries, _deleted = await self._redis.xautoclaim(
                self.stream,
                WORKER_GROUP,
                self.consumer,
                min_idle_ms,
                start_id=self._claim_cursor,
                count=count,
            )
        self._claim_cursor = cursor.decode() if isinstance(cursor, bytes) else str(cursor)
        return [(entry_id, fields) for entry_id, fields in entries if fields]

    async def renew(self, entry_ids: Sequence[bytes]) -> None:
        """Reset the idle time of jobs this worker is running (it is still alive)."""
        if entry_ids:
            with store_errors("the job stream"):
                await self._redis.xclaim(
                    self.stream, WORKER_GROUP, self.consumer, 0, list(entry_ids), justid=True
                )

    async def emit(self, job: Job, event: Event) -> EmitOutcome:
        """Write ``accepted`` or a ``chunk`` unless the gateway cancelled the job or is gone."""
        keys = [self._keys.cancel(job.reply_to, job.id, job.attempt), job.reply_to]
        args = [item for pair in event.to_fields().items() for item in pair]
        with store_errors("the reply stream"):
            outcome = await self._emit(keys=keys, args=args)
        return _EMIT_OUTCOMES[int(outcome)]

    async def cancelled(self, job: Job) -> bool:
        """Whether the gateway has abandoned the job (its client left, or it timed out)."""
        with store_errors("the reply stream"):
            return bool(
                await self._redis.exists(self._keys.cancel(job.reply_to, job.id, job.attempt))
            )

    async def reply(self, reply_to: str, event: Event, ack: bytes | None = None) -> bool:
        """Write an event; False when the gateway's reply stream is gone. ``ack``: the
        job's entry, acknowledged in the same round trip (with a job's last event)."""
        fields = event.to_fields()
        if ack is not None and not self._trim_due():
            with store_errors("the reply stream"):
                async with self._redis.pipeline(transaction=False) as pipe:
                    pipe.xadd(reply_to, fields, nomkstream=True)  # type: ignore[arg-type]
                    pipe.xack(self.stream, WORKER_GROUP, ack)
                    added, _ = await pipe.execute()
            self._untrimmed += 1
            return added is not None
        with store_errors("the reply stream"):
            added = await self._redis.xadd(reply_to, fields, nomkstream=True)  # type: ignore[arg-type]
        if ack is not None:
            await self.ack(ack)
        return added is not None

    async def ack(self, entry_id: bytes) -> None:
        """Acknowledge a finished job, trimming the stream every ``TRIM_EVERY`` acks (a
        trim per job cost three more Redis calls; ``trim`` catches up when work pauses)."""
        with store_errors("the job stream"):
            if not self._trim_due():
                await self._redis.xack(self.stream, WORKER_GROUP, entry_id)
                self._untrimmed += 1
            else:
                await self._ack_and_trim(keys=[self.stream], args=[WORKER_GROUP, entry_id])
                self._untrimmed = 0

    def _trim_due(self) -> bool:
        return self._untrimmed + 1 >= TRIM_EVERY

    async def trim(self) -> None:
        """Trim what this worker's acks since the last trim left behind (periodically)."""
        if self._untrimmed:
            with store_errors("the job stream"):
                await self._ack_and_trim(keys=[self.stream], args=[WORKER_GROUP])
            self._untrimmed = 0

    async def backlog(self) -> tuple[int, int]:
        """The group's pending jobs (delivered, not yet acknowledged) and its lag (not yet
        delivered); Redis reports no lag after some deletions, read as 0 then."""
        with store_errors("the job stream"):
            groups = await self._redis.xinfo_groups(self.stream)
        for group in groups:
            if group["name"] in (WORKER_GROUP, WORKER_GROUP.encode()):
                return int(group["pending"] or 0), int(group["lag"] or 0)
        return 0, 0

    async def leave(self) -> None:
        """Remove this consumer from the group, unless it still owns unfinished jobs
        (deleting it would drop them; another worker of the node reclaims them instead)."""
        with store_errors("the job stream"):
            pending = await self._redis.xpending_range(
                self.stream, WORKER_GROUP, min="-", max="+", count=1, consumername=self.consumer
            )
            if not pending:
                await self._redis.xgroup_delconsumer(self.stream, WORKER_GROUP, self.consumer)
