"""Nothing is lost when Kafka goes away: under load, across a gateway restart, and when
the spool itself fails.

The broker keeps messages in memory, so a restarted broker is empty: each test reads what
the first broker acknowledged before stopping it, and the rest from its successor.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
import time
from typing import Any

import httpx
import pytest

from api_router.config.settings import KafkaSettings
from api_router.usage.kafka_producer import KafkaUnavailable, UsageProducer
from tests.support.servers import TansuBroker, eventually, free_port
from tests.support.stack import Gateway, Stack, bearer, chat
from tests.support.usage_topic import TopicReader


async def test_a_broker_outage_under_steady_load_loses_no_record(stack: Stack) -> None:
    broker = TansuBroker().start()
    kafka = {"bootstrap_servers": broker.bootstrap, "send_timeout_s": 1.0}
    stack.worker("node-a")
    key = await stack.create_key()
    sent: set[str] = set()
    finished_at: dict[str, float] = {}
    try:
        async with stack.gateway(kafka=kafka) as gw:
            await gw.wait_for_model("llama3.2")

            async def load(seconds: float) -> None:
                end = time.monotonic() + seconds
                while time.monotonic() < end:
                    answer = await _post(gw, key)
                    sent.add(answer.json()["id"])
                    finished_at[answer.json()["id"]] = time.time()
                    await asyncio.sleep(0.05)

            await load(2)
            await eventually(lambda: gw.services.usage.depth == 0, 10, "first records shipped")
            first = TopicReader(broker.bootstrap, stack.usage_topic)
            await first.read_until(len(sent))
            broker.stop()
            await load(10)
            during = (await gw.client.get("/v1/status/readyz")).json()
            spooled = gw.services.usage.depth
            broker = TansuBroker(broker.port).start()  # a new, empty broker on the same port
            await load(2)
            await eventually(lambda: gw.services.usage.depth == 0, 30, "spool drained")
        second = TopicReader(broker.bootstrap, stack.usage_topic)
        await second.read_until(len(sent) - len(first.records))
    finally:
        broker.stop()

    received = [r["request_id"] for r in first.records + second.records]
    assert set(received) == sent
    assert during["status"] == "ready"
    assert during["components"]["usage_export"]["status"] == "degraded"
    assert spooled > 100
    delays = [
        sent_at - finished_at[record["request_id"]]
        for record, sent_at in zip(second.records, second.sent_at, strict=True)
    ]
    _report(
        records_sent=len(sent),
        records_received=len(received),
        duplicates=len(received) - len(set(received)),
        max_delivery_delay_s=round(max(delays), 2),
        spooled_during_outage=spooled,
    )


async def test_sigterm_while_the_broker_is_down_then_a_restart_loses_nothing(
    stack: Stack,
) -> None:
    broker = TansuBroker().start()
    kafka = {"bootstrap_servers": broker.bootstrap}
    stack.worker("node-a")
    key = await stack.create_key()
    try:
        gateway = stack.gateway_process(kafka=kafka)
        async with httpx.AsyncClient(base_url=gateway.url, headers=bearer(key)) as client:
            before = [await client.post("/v1/inference", json=chat()) for _ in range(3)]
            first = TopicReader(broker.bootstrap, stack.usage_topic)
            await first.read_until(3)
            broker.stop()
            during = [await client.post("/v1/inference", json=chat()) for _ in range(4)]
        gateway.send(signal.SIGTERM)  # at once: the last records are still in memory
        gateway.wait()
        broker = TansuBroker(broker.port).start()
        stack.gateway_process(kafka=kafka)  # the same spool directory
        second = TopicReader(broker.bootstrap, stack.usage_topic)
        await second.read_until(4)
    finally:
        broker.stop()
    assert [a.status_code for a in before + during] == [200] * 7
    assert {r["request_id"] for r in first.records} == {a.json()["id"] for a in before}
    assert {r["request_id"] for r in second.records} == {a.json()["id"] for a in during}


async def test_an_unreadable_spool_is_set_aside_and_requests_are_served(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    spool_dir = stack.tmp / "broken-spool"
    spool_dir.mkdir()
    (spool_dir / "usage-spool.sqlite").write_bytes(b"this is not an SQLite database" * 100)
    stack.worker("node-a")
    key = await stack.create_key()
    with caplog.at_level(logging.ERROR, logger="api_router.usage.spool"):
        async with stack.gateway(usage={"spool_dir": str(spool_dir)}) as gw:
            await gw.wait_for_model("llama3.2")
            answer = await _post(gw, key)
            # Each request leaves two records: its usage record and its audit message.
            await eventually(lambda: gw.services.usage.counts.produced == 2, 10, "records shipped")
    assert answer.status_code == 200
    assert "usage spool unreadable, moved aside" in caplog.text
    assert len(list(spool_dir.glob("usage-spool.corrupt-*"))) == 1


async def test_a_full_spool_disk_is_reported_and_records_still_reach_kafka(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    broker = TansuBroker().start()
    kafka = {"bootstrap_servers": broker.bootstrap, "send_timeout_s": 1.0}
    stack.worker("node-a")
    key = await stack.create_key()
    try:
        with caplog.at_level(logging.ERROR, logger="api_router.usage.exporter"):
            async with stack.gateway(kafka=kafka) as gw:
                await gw.wait_for_model("llama3.2")
                # Capping SQLite's file at its current size gives the real "database or
                # disk is full" error that a full disk does.
                spool = gw.services.usage._spool._db.conn  # noqa: SLF001 - the file under test
                (pages,) = spool.select_one("PRAGMA page_count")
                spool.execute(f"PRAGMA max_page_count = {pages}")
                # Records are spooled only while Kafka is away (else they go from memory).
                broker.stop()
                answers = [await _post(gw, key)]
                await eventually(lambda: not gw.services.usage.kafka_up, 10, "kafka seen away")
                answers += [await _post(gw, key) for _ in range(19)]
                broker = TansuBroker(broker.port).start()
                # Each request leaves two records: its usage record and its audit message.
                await eventually(lambda: gw.services.usage.counts.produced == 40, 30, "shipped")
                metrics = (await gw.client.get("/metrics")).text
    finally:
        broker.stop()
    assert [a.status_code for a in answers] == [200] * 20
    assert gw.services.usage.counts.produced == 40  # each once: the failed batch is not kept
    assert gw.services.usage.counts.spool_errors >= 1
    assert "usage spool write failed" in caplog.text
    assert "api_router_usage_spool_errors_total" in metrics


async def _post(gw: Gateway, key: str) -> httpx.Response:
    answer = await gw.client.post("/v1/inference", json=chat(), headers=bearer(key))
    assert answer.status_code == 200, answer.text
    return answer


def _report(**figures: Any) -> None:
    """Shown with ``pytest -s``: the figures the closing note of the export reports."""
    sys.stderr.write(f"\nusage outage: {json.dumps(figures)}\n")


@pytest.mark.parametrize("policy", ["refuse", "drop_oldest"])
async def test_a_full_spool_refuses_requests_or_drops_the_oldest_as_configured(
    stack: Stack, policy: str
) -> None:
    stack.worker("node-a")
    key = await stack.create_key()
    nobody = f"127.0.0.1:{free_port()}"  # Kafka is away for the whole test
    # Room for the records of three requests: a usage record and an audit message each.
    usage = {"spool_max_records": 6, "on_spool_full": policy, "batch_window_ms": 10}
    async with stack.gateway(kafka={"bootstrap_servers": nobody}, usage=usage) as gw:
        await gw.wait_for_model("llama3.2")
        answers = []
        for _ in range(6):
            answers.append(await gw.client.post("/v1/inference", json=chat(), headers=bearer(key)))
            await asyncio.sleep(0.05)  # a batch window: each record is committed on its own
        counts = gw.services.usage.counts
        depth = gw.services.usage.depth
    codes = [a.status_code for a in answers]
    if policy == "refuse":
        assert codes == [200, 200, 200, 503, 503, 503]
        assert answers[-1].json()["error"]["code"] == "usage_unavailable"
        assert (depth, counts.dropped) == (6, 0)
    else:
        assert codes == [200] * 6
        assert (depth, counts.dropped) == (6, 6)


async def test_a_batch_a_restarted_empty_broker_took_into_no_topic_counts_as_unsent() -> None:
    # Tansu keeps topics in memory: restarted, it has none, yet it acknowledges a produce
    # to a topic it does not have (the producer's metadata from before the restart still
    # names the partition) and keeps nothing. The adapter must not count such a batch; the
    # exporter then replaces the producer, which creates the topics before sending again
    # (test_direct_nodes' outage of Redis and Kafka finds every record).
    broker = TansuBroker().start()
    settings = KafkaSettings(
        bootstrap_servers=broker.bootstrap, usage_topic="usage.restart", enable_idempotence=False
    )
    producer = UsageProducer(settings, "test", ("usage.restart",))
    try:
        await producer.start()
        await producer.send([("usage.restart", "acme", b'{"n": 1}')])
        broker.stop()
        sending = asyncio.create_task(producer.send([("usage.restart", "acme", b'{"n": 2}')]))
        await asyncio.sleep(0)  # the record is in the producer's hands, its partition chosen
        broker.start()  # the same port, empty
        with pytest.raises(KafkaUnavailable, match="the topics changed under the producer"):
            await sending
    finally:
        await producer.close()
        broker.stop()
