"""The audit sink: the audit topic into PostgreSQL, each record stored once, nothing lost.

One loop: fetch a batch from the consumer group, store it in one transaction (creating a
day's partition first if a record needs one), and only then commit the consumer offsets.
A sink killed between the two re-reads that batch at its next start and stores nothing
twice (``ON CONFLICT DO NOTHING`` on the record id and its day). A database away keeps the
batch in hand and retries it, offsets uncommitted; partitions are maintained at start and
every ``MAINTAIN_EVERY_S``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial

from aiokafka import AIOKafkaConsumer, ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from psycopg import AsyncConnection
from psycopg import Error as DatabaseError

from api_router.config.settings import AuditSettings, KafkaSettings
from api_router.usage import audit_partitions
from api_router.usage.audit_migrations import migrate
from api_router.usage.audit_rows import AuditRows
from api_router.usage.kafka_producer import ensure_topics

log = logging.getLogger(__name__)

MAINTAIN_EVERY_S = 300.0
_FETCH_MS = 500
_RETRY_MIN_S = 0.2
_RETRY_MAX_S = 5.0
_CONNECT_TIMEOUT_S = 5
_LAG_EVERY_S = 5.0


@dataclass
class SinkCounts:
    """Plain counters and gauges, read by the sink's metrics."""

    stored: int = 0  # rows added (a re-delivered record adds none)
    duplicates: int = 0
    unreadable: int = 0
    past_retention: int = 0
    database_errors: int = 0
    lag: int = 0  # messages in the topic not yet stored, over this sink's partitions
    database_up: bool = False


class AuditSink:
    def __init__(
        self, kafka: KafkaSettings, audit: AuditSettings, database_url: str, client_id: str
    ) -> None:
        self._kafka = kafka
        self._audit = audit
        self._url = database_url
        self._client_id = client_id
        self._conn: AsyncConnection | None = None
        self._days: dict[str, set[dt.date]] = {}
        self._maintained_at = 0.0
        self.counts = SinkCounts()

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set. A batch in hand is stored and its offsets committed
        first, unless the database is away then: it is read again at the next start."""
        if not await self._retry(stop, self._prepare):
            return
        consumer = await self._subscribe(stop)
        if consumer is None:
            return
        log.info("audit sink consuming", extra={"topic": self._audit.topic})
        # Measured beside the loop, so a batch stuck on a database outage shows as lag.
        lag = asyncio.create_task(self._measure_lag(consumer))
        try:
            while not stop.is_set():
                batches = await consumer.getmany(
                    timeout_ms=_FETCH_MS, max_records=self._audit.sink_batch
                )
                messages = [m for records in batches.values() for m in records]
                if messages and await self._retry(stop, partial(self._store, messages)):
                    await _commit(consumer)
                if time.monotonic() - self._maintained_at > MAINTAIN_EVERY_S:
                    await self._retry(stop, self._maintain)
        finally:
            lag.cancel()
            await asyncio.gather(lag, return_exceptions=True)
            await consumer.stop()
            if self._conn is not None:
                await self._conn.close()

    async def _subscribe(self, stop: asyncio.Event) -> AIOKafkaConsumer | None:
        """A started consumer of the audit topic (created if missing); None if stopped while
        Kafka was away."""
        pause = _RETRY_MIN_S
        while not stop.is_set():
            consumer = AIOKafkaConsumer(
                self._audit.topic,
                bootstrap_servers=self._kafka.bootstrap_servers,
                client_id=self._client_id,
                group_id=self._audit.sink_group,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
            )
            try:
                admin = AIOKafkaAdminClient(
                    bootstrap_servers=self._kafka.bootstrap_servers, client_id=self._client_id
                )
                async with asyncio.timeout(_CONNECT_TIMEOUT_S):
                    await ensure_topics(admin, self._kafka, [self._audit.topic])
                # Not under that deadline: joining the group waits for the members that
                # left or died (up to their session timeout) and has timeouts of its own.
                await consumer.start()
                return consumer
            except (KafkaError, OSError, TimeoutError) as exc:
                log.warning("kafka unavailable, audit sink waiting", extra={"error": repr(exc)})
                await consumer.stop()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), pause)
            pause = min(pause * 2, _RETRY_MAX_S)
        return None

    async def _measure_lag(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            try:
                self.counts.lag = await _lag(consumer)
            except KafkaError as exc:
                log.warning("audit lag not measured", extra={"error": repr(exc)})
            await asyncio.sleep(_LAG_EVERY_S)

    async def _prepare(self) -> None:
        await migrate(await self._connection())
        await self._maintain()

    async def _maintain(self) -> None:
        conn = await self._connection()
        today = dt.datetime.now(dt.UTC).date()
        await audit_partitions.maintain(conn, self._audit.retention_days, today)
        for table in audit_partitions.TABLES:
            self._days[table] = await audit_partitions.existing_days(conn, table)
        self._maintained_at = time.monotonic()

    async def _store(self, messages: list[ConsumerRecord[bytes, bytes]]) -> None:
        rows = AuditRows()
        oldest = audit_partitions.first_kept_day(
            dt.datetime.now(dt.UTC).date(), self._audit.retention_days
        )
        for message in messages:
            if message.value is not None:
                rows.add(message.value, oldest)
        conn = await self._connection()
        async with conn.transaction():
            for table, days in zip(audit_partitions.TABLES, rows.days(), strict=True):
                missing = days - self._days.setdefault(table, set())
                await audit_partitions.create(conn, table, missing)
            added = await rows.insert(conn)
        for table, days in zip(audit_partitions.TABLES, rows.days(), strict=True):
            self._days[table] |= days
        written = len(rows.requests) + len(rows.actions)
        self.counts.stored += added
        self.counts.duplicates += written - added
        self.counts.unreadable += rows.unreadable
        self.counts.past_retention += rows.past_retention

    async def _connection(self) -> AsyncConnection:
        if self._conn is None or self._conn.closed:
            # Autocommit: every ``transaction()`` block is a real transaction that has
            # committed when it exits (never a savepoint inside an implicit one).
            self._conn = await AsyncConnection.connect(
                self._url, connect_timeout=_CONNECT_TIMEOUT_S, autocommit=True
            )
            self.counts.database_up = True
        return self._conn

    async def _retry(self, stop: asyncio.Event, step: Callable[[], Awaitable[None]]) -> bool:
        """Run ``step`` until it succeeds (True) or ``stop`` is set first (False)."""
        pause = _RETRY_MIN_S
        while True:
            try:
                await step()
                return True
            except DatabaseError as exc:
                self.counts.database_errors += 1
                self.counts.database_up = False
                log.warning("audit database unavailable, retrying", extra={"error": str(exc)})
                if self._conn is not None:
                    await self._conn.close()
                    self._conn = None
                # A partition cached as made may have been rolled back with the batch.
                self._days.clear()
            try:
                await asyncio.wait_for(stop.wait(), pause)
                return False
            except TimeoutError:
                pause = min(pause * 2, _RETRY_MAX_S)


async def _commit(consumer: AIOKafkaConsumer) -> None:
    """Commit the offsets of what was just stored. A failure (a rebalance took the
    partitions) only means those records come again, and are stored once."""
    try:
        await consumer.commit()
    except KafkaError as exc:
        log.warning(
            "audit offsets not committed; records will be re-read", extra={"error": repr(exc)}
        )


async def _lag(consumer: AIOKafkaConsumer) -> int:
    """Messages between this sink's positions and the ends of its partitions."""
    partitions = list(consumer.assignment())
    if not partitions:
        return 0
    ends = await consumer.end_offsets(partitions)
    lag = 0
    for partition in partitions:
        lag += max(ends[partition] - await consumer.position(partition), 0)
    return lag
