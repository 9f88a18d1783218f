"""The one adapter to Kafka: creates the usage topic and sends batches of records.

aiokafka's errors are translated to :class:`KafkaUnavailable` here and nowhere else.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, for_code

from api_router.config.settings import KafkaSettings

log = logging.getLogger(__name__)

# Starting a client or creating the topic gets this long; the broker is away otherwise.
_CONNECT_TIMEOUT_S = 5.0
_CLOSE_TIMEOUT_S = 2.0


class KafkaUnavailable(Exception):
    """The broker did not take a batch (unreachable, refused, or no ack in time)."""


class UsageProducer:
    """One aiokafka producer; replaced whole when it stops making progress."""

    def __init__(self, settings: KafkaSettings, client_id: str) -> None:
        self._settings = settings
        self._client_id = client_id
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        """Create the topic if missing, then connect the producer."""
        try:
            async with asyncio.timeout(_CONNECT_TIMEOUT_S):
                await self._ensure_topic()
                producer = AIOKafkaProducer(
                    bootstrap_servers=self._settings.bootstrap_servers,
                    client_id=self._client_id,
                    acks="all",
                    enable_idempotence=self._settings.enable_idempotence,
                    linger_ms=self._settings.linger_ms,
                    request_timeout_ms=int(self._settings.send_timeout_s * 1000),
                )
                try:
                    await producer.start()
                except BaseException:
                    await self._stop(producer)
                    raise
        except (KafkaError, OSError, TimeoutError) as exc:
            raise KafkaUnavailable(f"kafka unavailable: {exc!r}") from None
        self._producer = producer

    @property
    def started(self) -> bool:
        return self._producer is not None

    async def send(self, records: Sequence[tuple[str, bytes]]) -> None:
        """Send ``(tenant, json)`` records and wait until Kafka acknowledged every one."""
        if self._producer is None:
            raise KafkaUnavailable("producer not started")
        topic = self._settings.usage_topic
        try:
            async with asyncio.timeout(self._settings.send_timeout_s):
                acks = [
                    await self._producer.send(topic, value, key=tenant.encode())
                    for tenant, value in records
                ]
                await asyncio.gather(*acks)
        except (KafkaError, OSError, TimeoutError) as exc:
            raise KafkaUnavailable(f"kafka send failed: {exc!r}") from None

    async def close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await self._stop(producer)

    async def _ensure_topic(self) -> None:
        admin = AIOKafkaAdminClient(
            bootstrap_servers=self._settings.bootstrap_servers, client_id=self._client_id
        )
        await admin.start()
        try:
            if self._settings.usage_topic in await admin.list_topics():
                return
            topic = NewTopic(
                self._settings.usage_topic,
                num_partitions=self._settings.topic_partitions,
                replication_factor=self._settings.topic_replication,
            )
            response = await admin.create_topics([topic])
            for _name, code, *_ in response.topic_errors:
                # Another replica may have created it first; anything else is a failure.
                if code not in (0, TopicAlreadyExistsError.errno):
                    raise for_code(code)(f"creating the usage topic failed (error {code})")
            log.info("usage topic ready", extra={"topic": self._settings.usage_topic})
        finally:
            await admin.close()

    @staticmethod
    async def _stop(producer: AIOKafkaProducer) -> None:
        # A producer whose broker is gone can wait forever to flush; what it held is still
        # in the spool, so give up on it after a moment.
        try:
            async with asyncio.timeout(_CLOSE_TIMEOUT_S):
                await producer.stop()
        except (KafkaError, OSError, TimeoutError):
            log.warning("kafka producer did not close cleanly")
