"""Each request's audit record in Redis, written off the response path, and its lookup.

Requests only enqueue (:meth:`AuditStore.write`); one background loop writes batches in a
single pipeline: the record with the retention as TTL, plus its entries in the all-tenants
and the tenant's index (sorted by finish time, trimmed to the retention).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections import deque
from dataclasses import dataclass

import msgspec

from api_router.config.settings import AuditSettings
from api_router.errors import StoreUnavailable
from api_router.keyspace import Keyspace
from api_router.redis_store import Redis, get_many, store_errors
from api_router.usage.record import AdminAction, AuditRecord, Status

log = logging.getLogger(__name__)

_BATCH = 200
_BATCH_WINDOW_S = 0.1
_QUEUE_MAX = 50_000
_RETRY_S = 1.0
_FLUSH_TIMEOUT_S = 2.0
# A filtered listing reads at most this many index entries per page before it answers with
# what it found and a cursor, so a rare status cannot make one call scan a week of records.
_MAX_SCAN = 5_000

_decode = msgspec.json.Decoder(AuditRecord).decode
_decode_action = msgspec.json.Decoder(AdminAction).decode


@dataclass(frozen=True, slots=True)
class AuditQuery:
    tenant: str | None
    since_ms: int
    until_ms: int
    status: Status | None
    limit: int
    offset: int = 0


@dataclass(frozen=True, slots=True)
class AuditPage:
    records: list[AuditRecord]
    # Pass back as the query's offset (with the same until_ms) for the next page.
    next_offset: int | None


class AuditStore:
    def __init__(self, redis: Redis, keys: Keyspace, settings: AuditSettings) -> None:
        self._redis = redis
        self._keys = keys
        self._retention_s = settings.retention_s
        self._queue: deque[AuditRecord | AdminAction] = deque()
        self._wake = asyncio.Event()
        self.dropped = 0

    def write(self, record: AuditRecord | AdminAction) -> None:
        """Queue a request's record or an admin action; never blocks. Past the queue's
        bound the oldest is dropped."""
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
        with store_errors("the audit store"):
            raw = await self._redis.get(self._keys.audit_record(request_id))
        return None if raw is None else _decode(raw)

    async def admin_actions(self, count: int = 100) -> list[AdminAction]:
        """The latest admin actions, newest first."""
        with store_errors("the audit store"):
            entries = await self._redis.xrevrange(self._keys.audit_admin, count=count)
        return [_decode_action(fields[b"action"]) for _, fields in entries or () if fields]

    async def query(self, query: AuditQuery) -> AuditPage:
        """Records newest first within ``[since_ms, until_ms]``, filtered by status."""
        index = self._keys.audit_index(query.tenant)
        found: list[AuditRecord] = []
        offset = query.offset
        while len(found) < query.limit and offset - query.offset < _MAX_SCAN:
            with store_errors("the audit store"):
                ids = await self._redis.zrevrangebyscore(
                    index, query.until_ms, query.since_ms, start=offset, num=query.limit
                )
                if not ids:
                    return AuditPage(found, None)
                keys = [self._keys.audit_record(_text(i)) for i in ids]
                raws = await get_many(self._redis, keys)
            for scanned, raw in enumerate(raws, start=1):
                record = None if raw is None else _decode(raw)  # None: expired meanwhile
                if record and (query.status is None or record.status == query.status):
                    found.append(record)
                    if len(found) == query.limit:
                        return AuditPage(found, offset + scanned)
            offset += len(ids)
        return AuditPage(found, offset)

    async def _write_batch(self) -> bool:
        batch = [self._queue.popleft() for _ in range(min(_BATCH, len(self._queue)))]
        horizon_ms = int((time.time() - self._retention_s) * 1000)
        indexes = {self._keys.audit_index(None)}
        try:
            with store_errors("the audit store"):
                async with self._redis.pipeline(transaction=False) as pipe:
                    for record in batch:
                        if isinstance(record, AdminAction):
                            pipe.xadd(
                                self._keys.audit_admin,
                                {"action": msgspec.json.encode(record)},
                                minid=horizon_ms,
                                approximate=True,
                            )
                            pipe.expire(self._keys.audit_admin, self._retention_s)
                            continue
                        key = self._keys.audit_record(record.request_id)
                        pipe.set(key, msgspec.json.encode(record), ex=self._retention_s)
                        entry = {record.request_id: _epoch_ms(record.finished_at)}
                        tenant_index = self._keys.audit_index(record.tenant)
                        pipe.zadd(tenant_index, entry)
                        pipe.zadd(self._keys.audit_index(None), entry)
                        indexes.add(tenant_index)
                    for index in indexes:
                        pipe.zremrangebyscore(index, "-inf", horizon_ms)
                        pipe.expire(index, self._retention_s)
                    await pipe.execute()
        except StoreUnavailable:
            self._queue.extendleft(reversed(batch))  # keep the order for the next try
            log.warning(
                "audit store unavailable; records wait in memory",
                extra={"records": len(self._queue)},
            )
            return False
        except asyncio.CancelledError:
            # The loop was stopped mid-write (shutdown): put the batch back for aclose() to
            # write, or to report; writing a record twice is harmless (SET and ZADD).
            self._queue.extendleft(reversed(batch))
            raise
        return True


def _text(member: object) -> str:
    return member.decode() if isinstance(member, bytes) else str(member)


def _epoch_ms(rfc3339: str) -> int:
    return int(dt.datetime.fromisoformat(rfc3339).timestamp() * 1000)
