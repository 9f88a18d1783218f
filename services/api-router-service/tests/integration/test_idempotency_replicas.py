"""Idempotency-Key across gateway processes: duplicates sent to two replicas at once run
once (one backend call, one usage record, one debit), and a stored answer outlives the
gateway that stored it."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import httpx

from tests.support.fake_ollama import FakeOllama
from tests.support.limits import write_policies
from tests.support.stack import Stack, bearer, chat
from tests.support.usage_topic import TopicReader

POLICIES: dict[str, Any] = {
    "plans": {
        "metered": {
            "requests_per_second": 100,
            "tokens_per_minute": 100_000,
            "budget": {"per_month": 10.0, "unit": "cost"},
        },
    },
    "tenants": {"acme": {"plan": "metered"}},
    "models": {"default": {"prompt_price_per_1k": 0.1, "completion_price_per_1k": 0.2}},
}


def keyed(api_key: str, idempotency_key: str, **extra: str) -> dict[str, str]:
    return {"X-API-Key": api_key, "Idempotency-Key": idempotency_key, **extra}


async def test_duplicates_on_two_replicas_run_once_and_are_billed_once(
    stack: Stack, fake_ollama: FakeOllama, tmp_path: Path
) -> None:
    fake_ollama.delay_s = 0.5  # the first is still running when the others arrive
    stack.worker("node-a")
    limits = {"policies_file": str(write_policies(tmp_path / "policies.yaml", POLICIES))}
    replicas = [stack.gateway_process(f"gw{n}", limits=limits) for n in (1, 2)]
    key = await stack.create_key("acme")
    headers = keyed(key, "order-42", Prefer="wait=30")
    async with httpx.AsyncClient(timeout=30) as client:
        answers = await asyncio.gather(
            *(
                client.post(f"{gateway.url}/v1/inference", json=chat(), headers=headers)
                for gateway in replicas * 4
            )
        )
    assert [a.status_code for a in answers] == [200] * 8, [a.text for a in answers]
    ran = [a for a in answers if "idempotent-replayed" not in a.headers]
    assert len(ran) == 1
    assert {a.content for a in answers} == {ran[0].content}
    assert len(fake_ollama.chats) == 1
    first_id = ran[0].headers["x-request-id"]

    for gateway in replicas:  # a graceful stop settles and ships what is pending
        gateway.send(signal.SIGTERM)
        gateway.wait()
    async with stack.gateway(limits=limits) as reader:
        usage = await reader.client.get("/v1/usage", headers=bearer(key))
    asked = {a.headers["x-request-id"] for a in answers}
    records = await TopicReader(stack.broker.bootstrap, stack.usage_topic).read_covering({first_id})
    ours = {r["request_id"] for r in records} & asked
    assert ours == {first_id}
    record = next(r for r in records if r["request_id"] == first_id)
    report = usage.json()
    assert report["requests"] == 1
    assert report["budget"]["spent"] == record["cost"] > 0


async def test_a_stored_answer_outlives_the_gateway_that_stored_it(
    stack: Stack, fake_ollama: FakeOllama
) -> None:
    stack.worker("node-a")
    gateway = stack.gateway_process("gw")
    key = await stack.create_key()
    streamed = chat(content="count for me", stream=True)
    async with httpx.AsyncClient(timeout=30) as client:
        whole = await client.post(
            f"{gateway.url}/v1/inference", json=chat(), headers=keyed(key, "w")
        )
        stream = await client.post(
            f"{gateway.url}/v1/inference", json=streamed, headers=keyed(key, "s")
        )
        gateway.send(signal.SIGKILL)
        gateway.wait()
        restarted = stack.replace_gateway(gateway)
        whole_again = await client.post(
            f"{restarted.url}/v1/inference", json=chat(), headers=keyed(key, "w")
        )
        stream_again = await client.post(
            f"{restarted.url}/v1/inference", json=streamed, headers=keyed(key, "s")
        )
    assert whole.status_code == stream.status_code == 200
    assert whole_again.headers["idempotent-replayed"] == "true"
    assert whole_again.content == whole.content
    assert stream_again.headers["idempotent-replayed"] == "true"
    assert stream_again.headers["content-type"].startswith("text/event-stream")
    assert stream_again.content == stream.content
    assert len(fake_ollama.chats) == 2
