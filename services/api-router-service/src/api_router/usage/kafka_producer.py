"""The one adapter to Kafka: creates the usage and audit topics and sends batches of records.

aiokafka's errors are translated to :class:`KafkaUnavailable` here and nowhere else.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    KafkaError,
    MessageSizeTooLargeError,
    TopicAlreadyExistsError,
    UnknownTopicOrPartitionError,
    for_code,
)
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.protocol.metadata import MetadataRequest

from api_router.config.settings import KafkaSettings

log = logging.getLogger(__name__)

# Starting a client or creating the topic gets this long; the broker is away otherwise.
_CONNECT_TIMEOUT_S = 5.0
_CLOSE_TIMEOUT_S = 2.0
# Bytes per partition in one produce request (aiokafka's default is 16 KiB, about 25
# records): a ship batch of 500 took several round trips, one at a time, and at saturation
# the broker fell behind. Well under Kafka's default message.max.bytes (1 MiB).
_MAX_BATCH_BYTES = 256 * 1024
_PARTITIONER = DefaultPartitioner()


class KafkaUnavailable(Exception):
    """The broker did not take a batch (unreachable, refused, or no ack in time)."""


class UsageProducer:
    """One aiokafka producer; replaced whole when it stops making progress."""

    def __init__(self, settings: KafkaSettings, client_id: str, topics: Sequence[str]) -> None:
        self._settings = settings
        self._topics = tuple(topics)
        self._client_id = client_id
        # Kept from the moment they exist, so that close() also ends a start cut short.
        self._admin: AIOKafkaAdminClient | None = None
        self._producer: AIOKafkaProducer | None = None
        self._starting: asyncio.Task[None] | None = None
        # The topics' partitions when the producer started; a batch counts as sent only
        # if the broker still has them so (see _confirm_kept).
        self._layout_at_start: dict[str, frozenset[int]] = {}
        self.started = False

    async def start(self) -> None:
        """Create the topic if missing, then connect the producer.

        Runs as its own task, shielded: aiokafka leaks a connection when cancelled while it
        connects, so a caller being cancelled leaves the start to finish for close()."""
        if self._starting is None:
            self._starting = asyncio.create_task(self._start())
        try:
            await asyncio.shield(self._starting)
        finally:
            if self._starting.done():
                self._starting = None

    async def _start(self) -> None:
        try:
            async with asyncio.timeout(_CONNECT_TIMEOUT_S):
                await self._ensure_topic()
                self._producer = AIOKafkaProducer(
                    bootstrap_servers=self._settings.bootstrap_servers,
                    client_id=self._client_id,
                    acks="all",
                    enable_idempotence=self._settings.enable_idempotence,
                    linger_ms=self._settings.linger_ms,
                    max_batch_size=_MAX_BATCH_BYTES,
                    request_timeout_ms=int(self._settings.send_timeout_s * 1000),
                )
                await self._producer.start()
                self._layout_at_start = await self._layout(self._producer)
                if set(self._layout_at_start) != set(self._topics):
                    raise UnknownTopicOrPartitionError(f"topics missing: {self._layout_at_start}")
        except (KafkaError, OSError, TimeoutError) as exc:
            await self._close_clients()
            raise KafkaUnavailable(f"kafka unavailable: {exc!r}") from None
        self.started = True

    async def send(self, records: Sequence[tuple[str, str, bytes]]) -> None:
        """Send ``(topic, tenant, json)`` records and wait until Kafka acknowledged every one."""
        producer = self._producer
        if producer is None or not self.started:
            raise KafkaUnavailable("producer not started")
        try:
            async with asyncio.timeout(self._settings.send_timeout_s):
                batches = await _batches(producer, records)
                acks = [
                    await producer.send_batch(batch, topic, partition=partition)
                    for (topic, partition), batch in batches
                ]
                await asyncio.gather(*acks)
                await self._confirm_kept(producer)
        except (KafkaError, OSError, TimeoutError) as exc:
            raise KafkaUnavailable(f"kafka send failed: {exc!r}") from None

    async def _confirm_kept(self, producer: AIOKafkaProducer) -> None:
        """Fail the batch unless the broker still has the topics as the producer found them.

        A broker that lost its topics may have acknowledged records for them and kept none:
        Tansu (memory only; tests and `api-router dev`), restarted while a send was being
        retried on the producer's metadata from before (the refresh failed while it was
        down), takes a produce to a topic it does not have, answers no error and stores
        nothing readable. Asked without auto-creation, it names the topic unknown, or shows
        the one a metadata request since auto-created with its default partitions. The
        batch then counts as unsent; a new producer creates the topics and sends it again.
        One metadata request per batch, off the request path."""
        if (layout := await self._layout(producer)) != self._layout_at_start:
            raise UnknownTopicOrPartitionError(
                f"the topics changed under the producer: {layout} after {self._layout_at_start}"
            )

    async def _layout(self, producer: AIOKafkaProducer) -> dict[str, frozenset[int]]:
        """The partitions of each of the topics the broker has now."""
        client = producer.client
        node = client.get_random_node()
        if node is None:
            raise KafkaError("no broker known to ask for the topics")
        request = MetadataRequest(list(self._topics), allow_auto_topic_creation=False)
        topics = (await client.send(node, request)).to_object()["topics"]
        return {
            topic["topic"]: frozenset(partition["partition"] for partition in topic["partitions"])
            for topic in topics
            if topic["error_code"] == 0
        }

    async def close(self) -> None:
        starting, self._starting = self._starting, None
        if starting is not None:
            await asyncio.wait({starting}, timeout=_CONNECT_TIMEOUT_S)
            if starting.done() and not starting.cancelled():
                starting.exception()  # retrieved; the failure was logged by the caller
        await self._close_clients()

    async def _close_clients(self) -> None:
        self.started = False
        admin, self._admin = self._admin, None
        producer, self._producer = self._producer, None
        if admin is not None:
            await _within_a_moment(admin.close())
        if producer is not None:
            await _within_a_moment(producer.stop())

    async def _ensure_topic(self) -> None:
        self._admin = AIOKafkaAdminClient(
            bootstrap_servers=self._settings.bootstrap_servers, client_id=self._client_id
        )
        try:
            await ensure_topics(self._admin, self._settings, self._topics)
        finally:
            self._admin = None  # only now: a close cut short is finished by close()


async def ensure_topics(
    admin: AIOKafkaAdminClient, settings: KafkaSettings, topics: Sequence[str]
) -> None:
    """Create the missing ``topics`` with ``admin`` (started and closed here) as the
    settings say: never left to the broker's auto-creation."""
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(
                name,
                num_partitions=settings.topic_partitions,
                replication_factor=settings.topic_replication,
            )
            for name in topics
            if name not in existing
        ]
        if not missing:
            return
        response = await admin.create_topics(missing)
        for name, code, *_ in response.topic_errors:
            # Another replica may have created it first; anything else is a failure.
            if code not in (0, TopicAlreadyExistsError.errno):
                raise for_code(code)(f"creating the topic {name} failed (error {code})")
        log.info("topics ready", extra={"topics": [t.name for t in missing]})
    finally:
        await admin.close()


async def _within_a_moment(closing: Awaitable[None]) -> None:
    """A client whose broker is gone can wait forever to flush; what a producer held is
    still in the spool, so give up on it after a moment."""
    try:
        async with asyncio.timeout(_CLOSE_TIMEOUT_S):
            await closing
    except (KafkaError, OSError, TimeoutError):
        log.warning("kafka client did not close cleanly")


async def _batches(
    producer: AIOKafkaProducer, records: Sequence[tuple[str, str, bytes]]
) -> list[tuple[tuple[str, int], BatchBuilder]]:
    """The records in batches by topic and partition, placed as ``producer.send`` would
    place them (the default partitioner, keyed by tenant), in their order within each.

    One ``send`` per record cost about 17 µs each (a partitioner hash, a future, the
    accumulator), twice per request; appending to a batch costs a fraction of that."""
    topics = {topic for topic, _, _ in records}
    partitions = {topic: sorted(await producer.partitions_for(topic)) for topic in topics}
    placed: dict[tuple[str, str], int] = {}
    batches: list[tuple[tuple[str, int], BatchBuilder]] = []
    open_batches: dict[tuple[str, int], BatchBuilder] = {}
    for topic, tenant, value in records:
        key = tenant.encode()
        if (partition := placed.get((topic, tenant))) is None:
            partition = _PARTITIONER(key, partitions[topic], partitions[topic])
            placed[topic, tenant] = partition
        where = (topic, partition)
        batch = open_batches.get(where)
        if batch is None or batch.append(key=key, value=value, timestamp=None) is None:
            batch = open_batches[where] = producer.create_batch()
            batches.append((where, batch))
            if batch.append(key=key, value=value, timestamp=None) is None:
                raise MessageSizeTooLargeError(f"a record of {len(value)} bytes")
    return batches
