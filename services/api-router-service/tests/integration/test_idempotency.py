"""Idempotency-Key on the chat routes, in-process against real Redis, a real worker and the
fake Ollama: replays byte for byte (whole and streamed, both APIs), mismatches, bad keys,
answers worth retrying not kept, the audit record of a replay."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.support.fake_ollama import FakeOllama
from tests.support.servers import eventually
from tests.support.sse import parse_sse
from tests.support.stack import Gateway, Stack, chat

OPENAI_CHAT = {"model": "llama3.2", "messages": [{"role": "user", "content": "hi there"}]}


def keyed(api_key: str, idempotency_key: str, **extra: str) -> dict[str, str]:
    return {"X-API-Key": api_key, "Idempotency-Key": idempotency_key, **extra}


async def audit_record(gw: Gateway, request_id: str) -> Any:
    for _ in range(400):
        record = await gw.services.audit.get(request_id)
        if record is not None:
            return record
        await asyncio.sleep(0.025)
    raise TimeoutError(f"no audit record for {request_id}")


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/inference", chat()),
        ("/v1/inference", chat(stream=True)),
        ("/v1/chat/completions", OPENAI_CHAT),
        ("/v1/chat/completions", {**OPENAI_CHAT, "stream": True}),
    ],
    ids=["inference", "inference-stream", "openai", "openai-stream"],
)
async def test_a_retry_replays_the_first_answer_byte_for_byte(
    stack: Stack, fake_ollama: FakeOllama, path: str, body: dict[str, Any]
) -> None:
    stack.worker("node-a")
    key = await stack.create_key()
    async with stack.gateway() as gw:
        await gw.wait_for_model("llama3.2")
        first = await gw.client.post(path, json=body, headers=keyed(key, "order-1"))
        again = await gw.client.post(path, json=body, headers=keyed(key, "order-1"))
        replay_record = await audit_record(gw, again.headers["x-request-id"])
    assert first.status_code == again.status_code == 200, first.text
    assert again.content == first.content
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert again.headers["content-type"] == first.headers["content-type"]
    assert again.headers["x-route-node"] == "node-a"
    assert again.headers["x-request-id"] != first.headers["x-request-id"]
    assert len(fake_ollama.chats) == 1  # the backend ran once
    if body.get("stream"):
        events, _ = parse_sse(again.text)
        assert events[-1].data == "[DONE]" or events[-1].event == "done"
    assert replay_record.replay_of == first.headers["x-request-id"]
    assert (replay_record.http_status, replay_record.model) == (200, "llama3.2")
    assert replay_record.completion_tokens == 0


async def test_the_same_key_with_another_body_is_a_mismatch(
    stack: Stack, fake_ollama: FakeOllama
) -> None:
    stack.worker("node-a")
    key = await stack.create_key()
    async with stack.gateway() as gw:
        await gw.wait_for_model("llama3.2")
        first = await gw.client.post("/v1/inference", json=chat(), headers=keyed(key, "k"))
        other = await gw.client.post(
            "/v1/inference", json=chat(content="else"), headers=keyed(key, "k")
        )
        other_path = await gw.client.post(
            "/v1/chat/completions", json=chat(), headers=keyed(key, "k")
        )
    assert first.status_code == 200
    assert other.status_code == 422
    assert other.json()["error"]["code"] == "idempotency_key_mismatch"
    assert other_path.status_code == 422
    assert len(fake_ollama.chats) == 1


async def test_keys_are_scoped_to_the_tenant(stack: Stack, fake_ollama: FakeOllama) -> None:
    stack.worker("node-a")
    acme = await stack.create_key("acme")
    globex = await stack.create_key("globex")
    async with stack.gateway() as gw:
        await gw.wait_for_model("llama3.2")
        one = await gw.client.post("/v1/inference", json=chat(), headers=keyed(acme, "same"))
        two = await gw.client.post("/v1/inference", json=chat(), headers=keyed(globex, "same"))
    assert one.status_code == two.status_code == 200
    assert "idempotent-replayed" not in two.headers
    assert len(fake_ollama.chats) == 2


@pytest.mark.parametrize(
    "value",
    ["", '""', "x" * 256, "tab\there", '"unterminated', "caf\u00e9"],
    ids=["empty", "empty-quoted", "too-long", "control", "bad-quoted", "non-ascii"],
)
async def test_a_key_that_is_not_1_to_255_printable_characters_is_refused(
    stack: Stack, fake_ollama: FakeOllama, value: str
) -> None:
    key = await stack.create_key()
    async with stack.gateway() as gw:
        response = await gw.client.post(
            "/v1/inference",
            json=chat(),
            headers=[
                (b"X-API-Key", key.encode()),
                (b"Idempotency-Key", value.encode("latin-1")),
            ],
        )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "invalid_idempotency_key"
    assert fake_ollama.chats == []


async def test_a_quoted_key_is_the_same_key_unquoted(stack: Stack, fake_ollama: FakeOllama) -> None:
    stack.worker("node-a")
    key = await stack.create_key()
    async with stack.gateway() as gw:
        await gw.wait_for_model("llama3.2")
        first = await gw.client.post("/v1/inference", json=chat(), headers=keyed(key, "a b"))
        quoted = await gw.client.post("/v1/inference", json=chat(), headers=keyed(key, '"a b"'))
    assert quoted.headers["idempotent-replayed"] == "true"
    assert quoted.content == first.content


async def test_an_answer_worth_retrying_is_not_kept(stack: Stack, fake_ollama: FakeOllama) -> None:
    stack.worker("node-a")
    key = await stack.create_key()
    fake_ollama.fail_status = 500
    async with stack.gateway(routing={"max_attempts": 1}) as gw:
        await gw.wait_for_model("llama3.2")
        failed = await gw.client.post("/v1/inference", json=chat(), headers=keyed(key, "k5"))
        fake_ollama.fail_status = None
        retried = await gw.client.post("/v1/inference", json=chat(), headers=keyed(key, "k5"))
        replayed = await gw.client.post("/v1/inference", json=chat(), headers=keyed(key, "k5"))
    assert failed.status_code == 502, failed.text
    assert retried.status_code == 200
    assert "idempotent-replayed" not in retried.headers
    assert replayed.headers["idempotent-replayed"] == "true"
    assert replayed.content == retried.content
    assert len(fake_ollama.chats) == 2


async def test_a_final_refusal_is_kept_and_replayed(stack: Stack, fake_ollama: FakeOllama) -> None:
    stack.worker("node-a")
    key = await stack.create_key()
    async with stack.gateway() as gw:
        await gw.wait_for_model("llama3.2")
        body = chat(model="no-such-model")
        first = await gw.client.post("/v1/inference", json=body, headers=keyed(key, "k4"))
        again = await gw.client.post("/v1/inference", json=body, headers=keyed(key, "k4"))
    assert first.status_code == again.status_code == 404
    assert first.json()["error"]["code"] == "model_not_found"
    assert again.headers["idempotent-replayed"] == "true"
    assert again.content == first.content


async def test_a_duplicate_while_the_first_runs_is_409_or_waits(
    stack: Stack, fake_ollama: FakeOllama
) -> None:
    stack.worker("node-a")
    key = await stack.create_key()
    fake_ollama.delay_s = 3.0  # the duplicates arrive while it runs, even on a busy machine
    async with stack.gateway() as gw:
        await gw.wait_for_model("llama3.2")
        first = asyncio.create_task(
            gw.client.post("/v1/inference", json=chat(), headers=keyed(key, "slow"))
        )
        await eventually(lambda: _claimed(stack), what="the first request's claim")
        busy = await gw.client.post("/v1/inference", json=chat(), headers=keyed(key, "slow"))
        waited = await gw.client.post(
            "/v1/inference", json=chat(), headers=keyed(key, "slow", Prefer="wait=30")
        )
        answered = await first
    assert busy.status_code == 409
    assert busy.json()["error"]["code"] == "idempotency_in_progress"
    assert busy.headers["retry-after"] == "1"
    assert answered.headers["x-request-id"] in busy.json()["error"]["message"]
    assert waited.status_code == 200
    assert waited.headers["idempotent-replayed"] == "true"
    assert waited.content == answered.content
    assert len(fake_ollama.chats) == 1


async def test_a_request_without_a_key_touches_no_idempotency_key(
    stack: Stack, fake_ollama: FakeOllama
) -> None:
    stack.worker("node-a")
    key = await stack.create_key()
    async with stack.gateway() as gw:
        await gw.wait_for_model("llama3.2")
        for _ in range(2):
            response = await gw.client.post(
                "/v1/inference", json=chat(), headers={"X-API-Key": key}
            )
            assert response.status_code == 200
        assert not _claimed(stack)
    assert len(fake_ollama.chats) == 2


def _claimed(stack: Stack) -> bool:
    with stack.redis.client() as client:
        return bool(client.keys(f"{stack.prefix}:idem:*"))


async def test_a_stream_that_ended_in_an_error_event_is_not_kept(
    stack: Stack, fake_ollama: FakeOllama
) -> None:
    fake_ollama.stream_chunks = 10
    fake_ollama.fail_after_chunks = 3
    stack.worker("node-a")
    key = await stack.create_key()
    body = chat(stream=True)
    async with stack.gateway() as gw:
        await gw.wait_for_model("llama3.2")
        broken = await gw.client.post("/v1/inference", json=body, headers=keyed(key, "s1"))
        fake_ollama.fail_after_chunks = None
        retried = await gw.client.post("/v1/inference", json=body, headers=keyed(key, "s1"))
    assert broken.status_code == 200  # the error came as the stream's last event
    assert parse_sse(broken.text)[0][-1].event == "error"
    assert "idempotent-replayed" not in retried.headers
    assert parse_sse(retried.text)[0][-1].event == "done"
    assert len(fake_ollama.chats) == 2
