"""Usage records (and audit messages) to Kafka, at least once, with the request path never
waiting on Kafka.

Write-ahead: the request path appends each record to the journal (one ``write(2)``, before
the response's last byte: it survives a SIGKILL from then on, see ``journal.py``) and to an
in-memory batch. Every batch window the commit loop rotates the journal. While Kafka keeps
up, the ship loop sends the batch from memory and the rotated file is deleted once Kafka
acknowledged it; otherwise (Kafka away or behind) the batch is committed to the disk spool
and the file deleted then, and the ship loop sends the spool, oldest first, deleting records
only after Kafka acknowledged them. So at any moment a record is in a journal file or in the
spool, and a kill of the process, an outage of Kafka, a stalled producer or a restart of the
gateway loses nothing: records wait on disk and are re-sent, keeping their ``record_id``
for consumers to dedupe.

The audit trail rides the same pipeline: a request's :class:`AuditMessage` is journaled in
the same ``write(2)`` as its usage record, and an admin action's on its own; the ship loop
sends usage records to ``kafka.usage_topic`` and audit messages to ``audit.topic`` (told
apart by the ``record_id`` prefix).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections import deque
from collections.abc import Callable
from itertools import islice
from pathlib import Path
from typing import Literal, ParamSpec, TypeVar

import msgspec

from api_router.config.settings import KafkaSettings, UsageSettings
from api_router.usage.blocking_calls import BlockingCalls
from api_router.usage.journal import (
    JournalError,
    UsageJournal,
    discard,
    leftover_journals,
    read_journal,
)
from api_router.usage.kafka_producer import KafkaUnavailable, UsageProducer
from api_router.usage.record import AuditMessage, UsageRecord
from api_router.usage.spool import SpoolError, UsageSpool

log = logging.getLogger(__name__)

_RETRY_MIN_S = 0.2
_RETRY_MAX_S = 5.0
# A spool call that takes longer than this is treated as failed (sqlitedict's thread can
# die on a failed commit and leave callers waiting forever).
_SPOOL_TIMEOUT_S = 10.0
# Records memory may hold for Kafka, in ship batches, before new ones go to the spool. Each
# is on disk in its journal file already; the bound only caps memory. At saturation a
# batch's round trip to the broker can take longer than a commit window, and with room
# for under one batch the spool took nearly every record while Kafka was up (a commit, a
# read and a delete each, in SQLite's thread).
_MEMORY_BATCHES = 8

ExportState = Literal["ok", "spooling"]
P = ParamSpec("P")
T = TypeVar("T")


class ExportCounts:
    """Plain counters, read by the metrics callbacks (see telemetry/usage_gauges.py)."""

    def __init__(self) -> None:
        self.produced = 0
        self.spooled = 0
        self.dropped = 0
        self.spool_errors = 0
        self.export_errors = 0


class UsageExporter:
    def __init__(
        self, kafka: KafkaSettings, settings: UsageSettings, client_id: str, audit_topic: str
    ) -> None:
        self._settings = settings
        self._topics = (kafka.usage_topic, audit_topic)
        self._window_s = settings.batch_window_ms / 1000
        self._batch: deque[tuple[str, str]] = deque()
        self._committing = 0  # records of the batch the spool is taking now
        # Batches shipped straight from memory: while Kafka keeps up (their journal files
        # keep them until it acknowledges), or when the spool failed to take them.
        self._unspooled: deque[tuple[str, str]] = deque()
        directory = Path(settings.spool_dir)
        self._spool = UsageSpool(directory)
        # Rotated journal files, deleted once nothing of theirs is only in memory.
        self._finished: list[Path] = []
        self._journal_failing = False
        self._calls = BlockingCalls("usage-spool")
        self._producer = UsageProducer(kafka, client_id, self._topics)
        self._wake_shipper = asyncio.Event()
        self._step: asyncio.Future[bool] | None = None
        self._oldest_finished: float | None = None  # epoch s of the oldest unshipped record
        self.counts = ExportCounts()
        self.kafka_up = False
        self._recover(leftover_journals(directory))
        self._journal = UsageJournal(directory)

    # -- the request path --------------------------------------------------------------

    def record(self, *records: UsageRecord | AuditMessage) -> None:
        """Journal records and queue them for the spool: once this returns, they survive a
        kill of the process. One ``write(2)``, no wait; never raises."""
        while len(self._batch) + len(records) > self._settings.queue_max and self._batch:
            self._batch.popleft()  # the spool is stuck; keep the newest, count the loss
            self.counts.dropped += 1
            log.error("usage queue full, dropped the oldest record")
        lines = [msgspec.json.encode(record) for record in records]
        try:
            self._journal.append(b"".join(line + b"\n" for line in lines))
        except JournalError as exc:
            self._journal_failed(exc)
        else:
            if self._journal_failing:
                self._journal_failing = False
                log.info("usage journal writable again")
        self._batch.extend(
            (record.record_id, line.decode()) for record, line in zip(records, lines, strict=True)
        )

    def _journal_failed(self, exc: JournalError) -> None:
        # The record lives in memory only until the next commit; logged once per outage.
        self.counts.spool_errors += 1
        if not self._journal_failing:
            self._journal_failing = True
            message = "usage journal not writable; records wait in memory for the spool"
            log.error(message, extra={"error": str(exc)})

    @property
    def accepting(self) -> bool:
        """False while the spool is full and the policy is to refuse new requests."""
        return not (
            self._settings.on_spool_full == "refuse"
            and self._spool.depth >= self._settings.spool_max_records
        )

    @property
    def state(self) -> ExportState:
        return "ok" if self.kafka_up and not self._spool.depth else "spooling"

    @property
    def depth(self) -> int:
        """Records not yet acknowledged by Kafka."""
        return self._spool.depth + len(self._unspooled) + len(self._batch) + self._committing

    def oldest_age_s(self) -> float:
        return 0.0 if self._oldest_finished is None else time.time() - self._oldest_finished

    # -- background work ---------------------------------------------------------------

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self._commit_loop())
            group.create_task(self._ship_loop())

    async def aclose(self) -> None:
        """Graceful shutdown, after the loops were stopped: spool what is in memory, then
        ship for up to ``shutdown_flush_s``; whatever is left waits for the next start."""
        if self._step is not None:  # the step the stopped ship loop left running
            await asyncio.wait({self._step}, timeout=self._settings.shutdown_flush_s)
        await self._calls.settle(_SPOOL_TIMEOUT_S)  # calls the stopped loops left running
        await self._commit()
        try:
            async with asyncio.timeout(self._settings.shutdown_flush_s):
                while (self._spool.depth or self._unspooled) and await self._ship_once():
                    pass
        except TimeoutError:
            log.warning(
                "usage records left in the spool for the next start", extra={"records": self.depth}
            )
        await self._producer.close()
        await self._calls.settle(_SPOOL_TIMEOUT_S)
        self._spool.close()
        self._journal.close()
        if not self._unspooled:  # else the files carry those records to the next start
            self._finished.append(self._journal.path)
            self._discard_journals()

    def _recover(self, leftovers: list[Path]) -> None:
        """Commit the journal files a killed process left to the spool (at start-up, so
        blocking is fine); what the spool cannot take is shipped from memory."""
        for path in leftovers:
            records = read_journal(path)
            try:
                self._spool.append(records)
            except SpoolError as exc:
                self._spool.reopen()
                self.counts.spool_errors += 1
                message = "usage spool write failed; shipping recovered records from memory"
                log.error(message, extra={"error": str(exc)})
                self._unspooled.extend(records)
                self._finished.append(path)
                continue
            discard(path)
            recovered = {"path": str(path), "records": len(records)}
            log.info("recovered usage records from the journal", extra=recovered)

    async def _commit_loop(self) -> None:
        while True:
            await asyncio.sleep(self._window_s)
            await self._commit()

    async def _commit(self) -> None:
        if not self._batch:
            return
        batch = list(self._batch)
        self._batch.clear()
        # Together with taking the batch (no await between): the rotated file holds exactly
        # the records of this batch (and of earlier ones if a rotation failed).
        try:
            finished: Path | None = self._journal.rotate()
        except JournalError as exc:
            finished = None  # its records stay in the current file, deleted at a later rotation
            self._journal_failed(exc)
        if self._ships_from_memory():
            # Kafka keeps up: the batch goes straight from memory, and its journal file is
            # deleted once Kafka has it. SQLite is for the backlog of an outage only (a
            # commit and a delete of every batch was most of a quiet gateway's CPU).
            self._unspooled.extend(batch)
        else:
            await self._spool_batch(batch)
        if finished is not None:
            self._finished.append(finished)
        self._discard_journals()
        self._wake_shipper.set()

    def _ships_from_memory(self) -> bool:
        """Kafka is up, nothing older waits in the spool, and memory has room."""
        room = len(self._unspooled) < self._settings.ship_batch * _MEMORY_BATCHES
        return self.kafka_up and not self._spool.depth and room

    async def _spool_batch(self, batch: list[tuple[str, str]]) -> None:
        # Counted in ``depth`` while the spool takes them: they are in neither place then,
        # and a depth of 0 must mean that Kafka acknowledged everything.
        self._committing = len(batch)
        try:
            await self._make_room(len(batch))
            await self._call_spool(self._spool.append, batch)
            self.counts.spooled += len(batch)
        except SpoolError as exc:
            self.counts.spool_errors += 1
            log.error("usage spool write failed; shipping from memory", extra={"error": str(exc)})
            self._unspooled.extend(batch)
        finally:
            self._committing = 0

    def _discard_journals(self) -> None:
        """Delete rotated journal files once every record of theirs is in the spool or
        acknowledged by Kafka (none waits in memory)."""
        if not self._unspooled:
            for path in self._finished:
                discard(path)
            self._finished.clear()

    async def _make_room(self, incoming: int) -> None:
        if self._settings.on_spool_full != "drop_oldest":
            return
        excess = self._spool.depth + incoming - self._settings.spool_max_records
        if excess > 0:
            oldest = [rid for rid, _ in await self._call_spool(self._spool.oldest, excess)]
            await self._call_spool(self._spool.delete, oldest)
            self.counts.dropped += len(oldest)
            log.error(
                "usage spool full, dropped the oldest records", extra={"dropped": len(oldest)}
            )

    async def _ship_loop(self) -> None:
        pause = _RETRY_MIN_S
        while True:
            # Each step runs as its own task, shielded: cancelling the loop between Kafka's
            # ack and the spool delete would send those records twice; aclose() awaits it.
            self._step = asyncio.ensure_future(self._ship_once())
            if not await asyncio.shield(self._step):
                await asyncio.sleep(pause)
                pause = min(pause * 2, _RETRY_MAX_S)
                continue
            pause = _RETRY_MIN_S
            if not self._spool.depth and not self._unspooled:
                self._oldest_finished = None
                self._wake_shipper.clear()
                await self._wake_shipper.wait()

    async def _ship_once(self) -> bool:
        """Send one batch, oldest first; False when Kafka (or the spool) is unavailable."""
        from_memory = bool(self._unspooled)
        try:
            if not self._producer.started:
                await self._producer.start()
            if from_memory:
                batch = list(islice(self._unspooled, self._settings.ship_batch))
            else:
                batch = await self._call_spool(self._spool.oldest, self._settings.ship_batch)
            if batch:
                self._oldest_finished = _finished_at(batch[0][1])
                messages = [self._kafka_message(rid, value) for rid, value in batch]
                await self._producer.send(messages)
        except KafkaUnavailable as exc:
            self.counts.export_errors += 1
            if self.kafka_up:
                log.warning(
                    "kafka unavailable, usage records wait in the spool", extra={"error": str(exc)}
                )
            self.kafka_up = False
            # A producer that stopped making progress is replaced, not retried: an
            # idempotent one can be stuck for good after the broker lost its state.
            await self._producer.close()
            return False
        except SpoolError as exc:
            self.counts.spool_errors += 1
            log.error("usage spool read failed", extra={"error": str(exc)})
            return False
        if not self.kafka_up:
            log.info("kafka available, shipping usage records")
            self.kafka_up = True
        if from_memory:
            for _ in batch:
                self._unspooled.popleft()
            self._discard_journals()
        elif batch:
            await self._call_spool(self._spool.delete, [rid for rid, _ in batch])
        self.counts.produced += len(batch)
        return True

    async def _call_spool(self, call: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a blocking spool call off the event loop, with a deadline."""
        try:
            return await self._calls.run(_SPOOL_TIMEOUT_S, call, *args, **kwargs)
        except (SpoolError, TimeoutError) as exc:
            # sqlitedict's thread dies on a failed commit; start a fresh one for next time.
            await self._calls.run(_SPOOL_TIMEOUT_S, self._spool.reopen)
            raise SpoolError(str(exc) or "usage spool call timed out") from None

    def _kafka_message(self, record_id: str, value: str) -> tuple[str, str, bytes]:
        """The record's topic, its tenant (the message key) and its bytes."""
        usage_topic, audit_topic = self._topics
        topic = usage_topic if record_id.startswith("usage_") else audit_topic
        return topic, msgspec.json.decode(value, type=_Routing).tenant, value.encode()


class _Routing(msgspec.Struct):
    tenant: str
    finished_at: str


def _finished_at(value: str) -> float:
    finished = msgspec.json.decode(value, type=_Routing).finished_at
    return dt.datetime.fromisoformat(finished).timestamp()
