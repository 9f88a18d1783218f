"""Usage records reach the Kafka topic, one per billable request, read back by a consumer."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from api_router.auth.api_keys import parse_key
from api_router.usage.journal import leftover_journals
from tests.support.servers import eventually
from tests.support.stack import Stack, bearer, chat
from tests.support.usage_topic import read_usage


async def test_each_request_leaves_exactly_one_record_with_its_values(stack: Stack) -> None:
    stack.worker("node-a", pool="edge")
    key = await stack.create_key("acme")
    expired = await stack.create_key("acme", expires_at=time.time() - 1)
    stranger = "ark_kaaaaaaaaaaaa_" + "a" * 32
    async with stack.gateway() as gw:
        await gw.wait_for_model("llama3.2")
        answers = [
            await gw.client.post("/v1/inference", json=chat(content=f"hi {i}"), headers=bearer(key))
            for i in range(5)
        ]
        unknown_model = await gw.client.post(
            "/v1/inference", json=chat("no-such-model"), headers=bearer(key)
        )
        refused = await gw.client.post("/v1/inference", json=chat(), headers=bearer(expired))
        # Nobody can show this key is theirs: answered, but billed to no one.
        anonymous = await gw.client.post("/v1/inference", json=chat(), headers=bearer(stranger))
    assert [a.status_code for a in answers] == [200] * 5
    assert (unknown_model.status_code, refused.status_code, anonymous.status_code) == (
        404,
        401,
        401,
    )

    records = await read_usage(stack.broker.bootstrap, stack.usage_topic, 8, timeout_s=5)
    assert len(records) == 7, records
    by_request = {r["request_id"]: r for r in records}
    assert len({r["record_id"] for r in records}) == 7
    key_id = parse_key(key)
    assert key_id is not None
    for answer in answers:
        body = answer.json()
        record = by_request[body["id"]]
        assert record["tenant"] == "acme"
        assert record["key_id"] == key_id.key_id
        assert (record["model"], record["node_id"], record["pool"]) == (
            "llama3.2",
            "node-a",
            "edge",
        )
        assert (record["status"], record["http_status"], record["error_code"]) == ("ok", 200, None)
        assert record["prompt_tokens"] == body["usage"]["prompt_tokens"]
        assert record["completion_tokens"] == body["usage"]["completion_tokens"]
        assert record["timings"]["queue_ms"] == body["timings"]["queue_ms"]
        assert record["timings"]["inference_ms"] == body["timings"]["inference_ms"]
        assert record["routing"] == {
            "outcome": "dispatched",
            "attempts": 1,
            "reason": "sticky",
            "candidates": ["node-a"],
            "tried": [{"node_id": "node-a", "pool": "edge", "reason": "sticky", "error": None}],
        }
        assert record["schema_version"] == 1
        assert record["started_at"] <= record["finished_at"]
        assert record["gateway_instance"] == gw.services.instance_id
    missing = by_request[unknown_model.headers["x-request-id"]]
    assert (missing["status"], missing["http_status"], missing["error_code"]) == (
        "denied",
        404,
        "model_not_found",
    )
    assert (missing["node_id"], missing["routing"]["outcome"]) == ("", "not_routed")
    denied = by_request[refused.headers["x-request-id"]]
    assert (denied["status"], denied["error_code"], denied["tenant"]) == (
        "denied",
        "key_expired",
        "acme",
    )
    assert anonymous.headers["x-request-id"] not in by_request


async def test_streams_and_openai_requests_leave_records_model_listings_none(
    stack: Stack,
) -> None:
    stack.worker("node-a")
    key = await stack.create_key("acme")
    async with stack.gateway() as gw:
        await gw.wait_for_model("llama3.2")
        streamed = await gw.client.post(
            "/v1/inference", json=chat(stream=True), headers=bearer(key)
        )
        openai = await gw.client.post(
            "/v1/chat/completions",
            json={"model": "llama3.2", "messages": [{"role": "user", "content": "hi"}]},
            headers=bearer(key),
        )
        listing = await gw.client.get("/v1/models", headers=bearer(key))
    assert (streamed.status_code, openai.status_code, listing.status_code) == (200, 200, 200)
    records = await read_usage(stack.broker.bootstrap, stack.usage_topic, 3, timeout_s=5)
    by_request = {r["request_id"]: r for r in records}
    assert set(by_request) == {streamed.headers["x-request-id"], openai.headers["x-request-id"]}
    stream_record = by_request[streamed.headers["x-request-id"]]
    assert (stream_record["status"], stream_record["streamed"]) == ("ok", True)
    assert stream_record["completion_tokens"] > 0 and stream_record["timings"]["ttft_ms"] > 0
    chat_record = by_request[openai.headers["x-request-id"]]
    assert (chat_record["status"], chat_record["streamed"]) == ("ok", False)
    assert chat_record["completion_tokens"] == openai.json()["usage"]["completion_tokens"]


async def test_status_and_health_routes_leave_no_record(stack: Stack) -> None:
    async with stack.gateway() as gw:
        await gw.client.get("/v1/status/readyz")
        await gw.client.get("/metrics")
        await gw.client.get("/v1/status/healthz")
        await eventually(lambda: gw.services.usage.kafka_up, what="producer connected")
        ready = (await gw.client.get("/v1/status/readyz")).json()
        assert gw.services.usage.depth == 0
        assert gw.services.usage.counts.spooled == 0
    assert ready["components"]["usage_export"]["status"] == "ok"


async def test_while_kafka_keeps_up_records_go_from_memory_not_through_the_spool(
    stack: Stack,
) -> None:
    stack.worker("node-a")
    key = await stack.create_key()
    async with stack.gateway() as gw:
        await gw.wait_for_model("llama3.2")
        await eventually(lambda: gw.services.usage.kafka_up, what="producer connected")
        for i in range(10):  # over several batch windows
            answer = await gw.client.post(
                "/v1/inference", json=chat(content=f"hi {i}"), headers=bearer(key)
            )
            assert answer.status_code == 200
            await asyncio.sleep(0.03)
        # Each request leaves two records: its usage record and its audit message.
        await eventually(lambda: gw.services.usage.counts.produced == 20, 10, "shipped")
        await eventually(lambda: len(_journals(stack)) == 1, 5, "shipped batches' files deleted")
        assert (gw.services.usage.counts.spooled, gw.services.usage.depth) == (0, 0)


async def test_records_wait_in_memory_for_a_slow_broker_up_to_several_batches(
    stack: Stack,
) -> None:
    """At saturation a batch's round trip to the broker outlasted a commit window, and with
    room for under one batch the spool took nearly every record. Here batches of 2 are
    committed every millisecond while each send lingers 50 ms: 12 records fit in memory."""
    stack.worker("node-a")
    key = await stack.create_key()
    slow_kafka = {"linger_ms": 50}
    async with stack.gateway(usage={"ship_batch": 2, "batch_window_ms": 1}, kafka=slow_kafka) as gw:
        await gw.wait_for_model("llama3.2")
        await eventually(lambda: gw.services.usage.kafka_up, what="producer connected")
        for i in range(6):
            answer = await gw.client.post(
                "/v1/inference", json=chat(content=f"hi {i}"), headers=bearer(key)
            )
            assert answer.status_code == 200
        await eventually(lambda: gw.services.usage.counts.produced == 12, 10, "shipped")
        assert (gw.services.usage.counts.spooled, gw.services.usage.depth) == (0, 0)


def _journals(stack: Stack) -> list[Path]:
    """Journal files of the in-process gateway's spool directory (the open one included)."""
    [directory] = stack.tmp.glob("in-process-*-spool")
    return leftover_journals(directory)
