"""The usage producer sends each record where aiokafka's own ``send`` would (the default
partitioner, keyed by tenant) and in order within its partition, in batches of its own."""

from __future__ import annotations

import asyncio
import json
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from api_router.config.settings import KafkaSettings
from api_router.usage.kafka_producer import UsageProducer
from tests.support.servers import TansuBroker


async def test_records_land_in_their_tenants_partitions_in_order(broker: TansuBroker) -> None:
    topics = (f"usage.{uuid.uuid4().hex[:8]}", f"audit.{uuid.uuid4().hex[:8]}")
    settings = KafkaSettings(
        bootstrap_servers=broker.bootstrap, usage_topic=topics[0], enable_idempotence=False
    )
    tenants = [f"tenant-{n}" for n in range(12)]
    records = [
        (topic, tenant, json.dumps({"tenant": tenant, "n": n}).encode())
        for n in range(5)
        for tenant in tenants
        for topic in topics
    ]
    producer = UsageProducer(settings, "test", topics)
    try:
        await producer.start()
        await producer.send(records)
    finally:
        await producer.close()

    expected = await _partitions_by_plain_send(broker.bootstrap, topics[0], tenants)
    for topic in topics:
        landed = await _read(broker.bootstrap, topic, len(tenants) * 5)
        assert {(tenant, partition) for tenant, partition, _ in landed} == set(expected.items())
        for tenant in tenants:
            assert [n for t, _, n in landed if t == tenant] == [0, 1, 2, 3, 4]
    assert len(set(expected.values())) > 1  # the tenants spread over several partitions


async def _partitions_by_plain_send(
    bootstrap: str, topic: str, tenants: list[str]
) -> dict[str, int]:
    """Where aiokafka's ``send`` puts each tenant's records (same topic layout)."""
    plain = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await plain.start()
    try:
        sent = {t: await plain.send(topic, b'{"probe": true}', key=t.encode()) for t in tenants}
        return {tenant: (await ack).partition for tenant, ack in sent.items()}
    finally:
        await plain.stop()


async def _read(bootstrap: str, topic: str, count: int) -> list[tuple[str, int, int]]:
    """``(tenant, partition, n)`` of the first ``count`` records, in each partition's order."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    landed: list[tuple[str, int, int]] = []
    try:
        async with asyncio.timeout(20):
            while len(landed) < count:
                for partition, messages in (await consumer.getmany(timeout_ms=500)).items():
                    for message in messages:
                        value = json.loads(message.value)
                        if "probe" not in value:
                            landed.append((value["tenant"], partition.partition, value["n"]))
    finally:
        await consumer.stop()
    return landed
