"""Reading usage records and audit messages back from the broker, as a downstream
consumer would."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer


@dataclass
class TopicReader:
    """Collects every message of ``topic`` with the time it was produced."""

    bootstrap: str
    topic: str
    records: list[dict[str, Any]] = field(default_factory=list)
    # Per record: when the gateway's producer sent it (Kafka CreateTime), epoch seconds.
    sent_at: list[float] = field(default_factory=list)

    async def read_until(self, count: int, timeout_s: float = 20.0) -> list[dict[str, Any]]:
        """Read until ``count`` records in all have arrived (or the timeout passes)."""
        return await self._read(lambda: len(self.records) >= count, timeout_s)

    async def read_covering(
        self, request_ids: set[str], timeout_s: float = 20.0
    ) -> list[dict[str, Any]]:
        """Read until every one of ``request_ids`` has a record (or the timeout passes);
        a record delivered twice, as at-least-once delivery allows, counts once."""

        def covered() -> bool:
            return request_ids <= {request_id_of(record) for record in self.records}

        return await self._read(covered, timeout_s)

    async def _read(self, done: Callable[[], bool], timeout_s: float) -> list[dict[str, Any]]:
        consumer = AIOKafkaConsumer(
            self.topic,
            bootstrap_servers=self.bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            group_id=None,
        )
        await consumer.start()
        try:
            deadline = time.monotonic() + timeout_s
            while not done() and time.monotonic() < deadline:
                batches = await consumer.getmany(timeout_ms=200)
                for messages in batches.values():
                    for message in messages:
                        self.records.append(json.loads(message.value))
                        self.sent_at.append(message.timestamp / 1000)
                        assert message.key == self.records[-1]["tenant"].encode()
        finally:
            await asyncio.wait_for(consumer.stop(), 5)
        return self.records


def request_id_of(message: dict[str, Any]) -> str | None:
    """The request of a usage record or of an audit message (None for an admin action)."""
    if "request_id" in message:
        return str(message["request_id"])
    request = message.get("request")
    return None if request is None else str(request["request_id"])


async def read_usage(
    bootstrap: str, topic: str, count: int, timeout_s: float = 20.0
) -> list[dict[str, Any]]:
    return await TopicReader(bootstrap, topic).read_until(count, timeout_s)
