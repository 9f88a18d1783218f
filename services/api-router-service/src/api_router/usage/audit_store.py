"""The audit trail as a gateway sees it: a short recent window in Redis, the rest in
PostgreSQL.

Every audit record and admin action goes to Kafka through the usage spool (a request's
with its usage record, an admin action's from :meth:`AuditStore.write`), and the audit sink
stores them in PostgreSQL. So that a lookup right after an answer works before the sink
has caught up, each is also kept in Redis for ``audit.recent_window_s``: requests only
enqueue, and one background loop writes batches: the records, each with the window as TTL,
in one script call (a pipelined SET cost ~16 µs of redis-py per record; on a Redis Cluster,
whose scripts' keys must share a slot, they are pipelined), and admin actions on a stream
trimmed to the window. Lookups read Redis first, then PostgreSQL; the listing reads
PostgreSQL.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable

import msgspec
from redis.asyncio import RedisCluster

from api_router.config.settings import AuditSettings
from api_router.errors import StoreUnavailable
from api_router.keyspace import Keyspace
from api_router.redis_store import Redis, lua_script, store_errors
from api_router.usage.audit_database import AuditDatabase, AuditPage, AuditQuery
from api_router.usage.record import AdminAction, AuditMessage, AuditRecord, audit_message

log = logging.getLogger(__name__)

_BATCH = 200
_BATCH_WINDOW_S = 0.1
_QUEUE_MAX = 50_000
_RETRY_S = 1.0
_FLUSH_TIMEOUT_S = 2.0

_decode = msgspec.json.Decoder(AuditRecord).decode
_decode_action = msgspec.json.Decoder(AdminAction).decode

__all__ = ["AuditPage", "AuditQuery", "AuditStore"]


class AuditStore:
    def __init__(
        self,
        redis: Redis,
        keys: Keyspace,
        settings: AuditSettings,
        export: Callable[[AuditMessage], None],
        database: AuditDatabase | None,
    ) -> None:
        """``export``: journals a message for Kafka (the usage exporter's ``record``);
        ``database``: None without ``audit.database_url``."""
        self._redis = redis
        self._set_all = redis.register_script(lua_script(__package__, "set_all"))
        self._keys = keys
        self._window_s = settings.recent_window_s
        self._export = export
        self._database = database
        self._queue: deque[AuditRecord | AdminAction] = deque()
        self._wake = asyncio.Event()
        self.dropped = 0

    def write(self, action: AdminAction) -> None:
        """Journal an admin action for Kafka and queue it for the recent window; never
        blocks."""
        self._export(audit_message(action))
        self.remember(action)

    def remember(self, record: AuditRecord | AdminAction) -> None:
        """Queue a record for the recent window (a request's message was journaled with its
        usage record); never blocks. Past the queue's bound the oldest is dropped."""
        if len(self._queue) >= _QUEUE_MAX:
            self._queue.popleft()
            self.dropped += 1
            log.error("audit queue full, dropped the oldest record")
        self._queue.append(record)
        self._wake.set()

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            # Gather what arrives within the window: one pipeline per window, not per
            # request, keeps the writer's share of the event loop small under load.
            await asyncio.sleep(_BATCH_WINDOW_S)
            self._wake.clear()
            while self._queue:
                if not await self._write_batch():
                    await asyncio.sleep(_RETRY_S)

    async def aclose(self) -> None:
        """Write what is queued, giving up after a moment if Redis is away."""
        try:
            async with asyncio.timeout(_FLUSH_TIMEOUT_S):
                while self._queue and await self._write_batch():
                    pass
        except TimeoutError:
            pass
        if self._queue:
            log.error("audit records not written at shutdown", extra={"records": len(self._queue)})

    async def get(self, request_id: str) -> AuditRecord | None:
        """A request's record: from the recent window, else from PostgreSQL (also when
        Redis is away)."""
        try:
            with store_errors("the audit store"):
                raw = await self._redis.get(self._keys.audit_record(request_id))
        except StoreUnavailable:
            if self._database is None:
                raise
            raw = None
        if raw is not None:
            return _decode(raw)
        return None if self._database is None else await self._database.get(request_id)

    async def admin_actions(self, count: int = 100) -> list[AdminAction]:
        """The latest admin actions of the recent window, newest first, each once (a write
        retried after a timeout may have added one twice)."""
        with store_errors("the audit store"):
            entries = await self._redis.xrevrange(self._keys.audit_admin, count=count)
        actions: dict[str, AdminAction] = {}
        for _, fields in entries or ():
            if fields:
                action = _decode_action(fields[b"action"])
                actions.setdefault(action.action_id, action)
        return list(actions.values())

    async def query(self, query: AuditQuery) -> AuditPage:
        """Records newest first within ``[since_ms, until_ms]``, filtered by status."""
        if self._database is None:
            raise StoreUnavailable("the audit listing needs the audit database")
        return await self._database.query(query)

    async def _write_batch(self) -> bool:
        batch = [self._queue.popleft() for _ in range(min(_BATCH, len(self._queue)))]
        horizon_ms = int((time.time() - self._window_s) * 1000)
        try:
            with store_errors("the audit store"):
                await self._write(batch, horizon_ms)
        except StoreUnavailable:
            self._queue.extendleft(reversed(batch))  # keep the order for the next try
            log.warning(
                "audit store unavailable; records wait in memory",
                extra={"records": len(self._queue)},
            )
            return False
        except asyncio.CancelledError:
            # The loop was stopped mid-write (shutdown): put the batch back for aclose() to
            # write, or to report; a record written twice is one key (SET), an admin
            # action twice is two stream entries that readers dedupe by action_id.
            self._queue.extendleft(reversed(batch))
            raise
        return True

    async def _write(self, batch: list[AuditRecord | AdminAction], horizon_ms: int) -> None:
        records = [record for record in batch if isinstance(record, AuditRecord)]
        actions = [action for action in batch if isinstance(action, AdminAction)]
        if records and not isinstance(self._redis, RedisCluster):
            keys = [self._keys.audit_record(record.request_id) for record in records]
            values = [msgspec.json.encode(record) for record in records]
            await self._set_all(keys=keys, args=[self._window_s, *values])
            records = []
        if not records and not actions:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for action in actions:
                pipe.xadd(
                    self._keys.audit_admin,
                    {"action": msgspec.json.encode(action)},
                    minid=horizon_ms,
                    approximate=True,
                )
                pipe.expire(self._keys.audit_admin, self._window_s)
            for record in records:
                key = self._keys.audit_record(record.request_id)
                pipe.set(key, msgspec.json.encode(record), ex=self._window_s)
            await pipe.execute()
