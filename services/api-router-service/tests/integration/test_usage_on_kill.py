"""A gateway killed under load loses no usage record of a request it answered."""

from __future__ import annotations

import asyncio
import signal

import httpx

from tests.support.stack import Stack, bearer, chat
from tests.support.usage_topic import TopicReader


async def test_sigkill_under_load_loses_no_answered_record(stack: Stack) -> None:
    stack.worker("node-a", "--max-concurrency", "8")
    gateway = stack.gateway_process()
    key = await stack.create_key()
    answered: set[str] = set()

    async def client() -> None:
        async with httpx.AsyncClient(base_url=gateway.url, headers=bearer(key)) as http:
            while True:
                try:
                    response = await http.post("/v1/inference", json=chat())
                except httpx.TransportError:
                    return  # the gateway is gone
                if response.status_code == 200:
                    answered.add(response.json()["id"])

    clients = [asyncio.create_task(client()) for _ in range(8)]
    await asyncio.sleep(2.0)
    gateway.send(signal.SIGKILL)  # no shutdown at all: whatever is only in memory is gone
    await asyncio.to_thread(gateway.wait)
    await asyncio.gather(*clients)

    # The next gateway on the same spool directory commits what the journal kept and
    # ships it; an independent consumer reads the topic back.
    successor = stack.gateway_process()
    reader = TopicReader(stack.broker.bootstrap, stack.usage_topic)
    records = await reader.read_covering(answered, timeout_s=30)

    assert len(answered) > 200  # the kill came under load
    assert answered - {record["request_id"] for record in records} == set()
    assert "recovered usage records from the journal" in successor.log()
