"""Asynchronous jobs (``Prefer: respond-async``) in-process against real Redis, a real
worker and the fake Ollama: submit, poll, result, cancel, another tenant, expiry, and a
retried submission with an Idempotency-Key."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from jsonschema import Draft202012Validator

from api_router.contracts import load_contract
from tests.support.fake_ollama import FakeOllama, fake_reply
from tests.support.servers import eventually
from tests.support.stack import Gateway, Stack, chat

ASYNC = {"Prefer": "respond-async"}


def as_key(api_key: str, **extra: str) -> dict[str, str]:
    return {"X-API-Key": api_key, **extra}


async def poll(client: httpx.AsyncClient, location: str, key: str) -> httpx.Response:
    """GET the job until it is no longer running (what a client does after a 202)."""
    for _ in range(1000):
        response = await client.get(location, headers=as_key(key))
        if response.status_code != 202:
            return response
        assert response.json()["status"] in ("queued", "running")
        assert response.headers["retry-after"] == "1"
        await asyncio.sleep(0.02)
    raise TimeoutError(f"{location} never finished")


async def audit_record(gw: Gateway, request_id: str) -> Any:
    for _ in range(400):
        record = await gw.services.audit.get(request_id)
        if record is not None:
            return record
        await asyncio.sleep(0.025)
    raise TimeoutError(f"no audit record for {request_id}")


async def test_a_job_is_accepted_at_once_and_answers_what_a_sync_call_would(
    stack: Stack, fake_ollama: FakeOllama
) -> None:
    stack.worker("node-a")
    key = await stack.create_key()
    async with stack.gateway() as gw:
        await gw.wait_for_model("llama3.2")
        accepted = await gw.client.post("/v1/inference", json=chat(), headers=as_key(key, **ASYNC))
        request_id = accepted.headers["x-request-id"]
        done = await poll(gw.client, accepted.headers["location"], key)
        again = await gw.client.get(accepted.headers["location"], headers=as_key(key))
        sync = await gw.client.post("/v1/inference", json=chat(), headers=as_key(key))
        record = await audit_record(gw, request_id)
    assert accepted.status_code == 202, accepted.text
    assert accepted.headers["location"] == f"/v1/inference/{request_id}"
    assert accepted.headers["preference-applied"] == "respond-async"
    assert accepted.json() == {
        "id": request_id,
        "created": accepted.json()["created"],
        "status": "queued",
        "object": "inference.job",
    }
    Draft202012Validator(load_contract("inference.job")).validate(accepted.json())
    assert done.status_code == 200, done.text
    answer = done.json()
    Draft202012Validator(load_contract("inference.response")).validate(answer)
    assert answer["id"] == request_id
    assert answer.keys() == sync.json().keys()
    assert answer["message"] == sync.json()["message"]
    assert answer["message"]["content"] == fake_reply(chat()["messages"])
    assert (answer["object"], answer["node_id"], answer["finish_reason"]) == (
        "inference",
        "node-a",
        "stop",
    )
    assert answer["usage"]["completion_tokens"] > 0
    assert done.headers["server-timing"].startswith("gateway;dur=")
    assert again.content == done.content
    assert (record.status, record.http_status, record.streamed) == ("ok", 200, False)
    assert record.completion_tokens == answer["usage"]["completion_tokens"]
    assert len(fake_ollama.chats) == 2


async def test_only_its_tenant_sees_or_cancels_a_job(stack: Stack, fake_ollama: FakeOllama) -> None:
    stack.worker("node-a")
    acme = await stack.create_key("acme")
    globex = await stack.create_key("globex")
    async with stack.gateway() as gw:
        await gw.wait_for_model("llama3.2")
        accepted = await gw.client.post("/v1/inference", json=chat(), headers=as_key(acme, **ASYNC))
        location = accepted.headers["location"]
        seen = await gw.client.get(location, headers=as_key(globex))
        cancelled = await gw.client.delete(location, headers=as_key(globex))
        unknown = await gw.client.get("/v1/inference/req_" + "0" * 32, headers=as_key(acme))
        malformed = await gw.client.get("/v1/inference/nope", headers=as_key(acme))
        done = await poll(gw.client, location, acme)
    assert [seen.status_code, cancelled.status_code] == [404, 404]
    assert seen.json()["error"]["code"] == "not_found"
    assert [unknown.status_code, malformed.status_code] == [404, 404]
    assert done.status_code == 200


async def test_delete_cancels_a_running_job_and_charges_what_was_generated(
    stack: Stack, fake_ollama: FakeOllama
) -> None:
    fake_ollama.stream_chunks = 2000
    fake_ollama.chunk_delay_s = 0.02  # 40 s in all: long enough to be cancelled midway
    stack.worker("node-a")
    key = await stack.create_key()
    async with stack.gateway() as gw:
        await gw.wait_for_model("llama3.2")
        accepted = await gw.client.post("/v1/inference", json=chat(), headers=as_key(key, **ASYNC))
        location = accepted.headers["location"]
        await eventually(lambda: fake_ollama.chunks_sent >= 20, what="some text generated")
        running = await gw.client.get(location, headers=as_key(key))
        cancelled = await gw.client.delete(location, headers=as_key(key))
        after = await gw.client.get(location, headers=as_key(key))
        again = await gw.client.delete(location, headers=as_key(key))
        await eventually(lambda: fake_ollama.disconnects == 1, what="the backend call aborted")
        record = await audit_record(gw, accepted.headers["x-request-id"])
    assert running.status_code == 202 and running.json()["status"] == "running"
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    assert after.status_code == 410
    assert after.json()["error"]["code"] == "job_cancelled"
    assert again.status_code == 200
    assert fake_ollama.chunks_sent < 2000
    assert record.status == "cancelled"
    assert 0 < record.completion_tokens < 2000


async def test_a_finished_job_cannot_be_cancelled_and_expires_after_its_retention(
    stack: Stack, fake_ollama: FakeOllama
) -> None:
    stack.worker("node-a")
    key = await stack.create_key()
    # Short enough to see it end, long enough for the DELETE to find it first.
    async with stack.gateway(jobs={"retention_s": 3}) as gw:
        await gw.wait_for_model("llama3.2")
        accepted = await gw.client.post("/v1/inference", json=chat(), headers=as_key(key, **ASYNC))
        location = accepted.headers["location"]
        done = await poll(gw.client, location, key)
        refused = await gw.client.delete(location, headers=as_key(key))
        gone = await poll_until_gone(gw.client, location, key)
    assert done.status_code == 200
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "conflict"
    assert gone.json()["error"]["code"] == "not_found"


async def poll_until_gone(client: httpx.AsyncClient, location: str, key: str) -> httpx.Response:
    for _ in range(500):
        response = await client.get(location, headers=as_key(key))
        if response.status_code == 404:
            return response
        await asyncio.sleep(0.02)
    raise TimeoutError(f"{location} never expired")


async def test_a_failed_job_answers_its_error_and_a_model_nobody_serves_is_refused_at_once(
    stack: Stack, fake_ollama: FakeOllama
) -> None:
    stack.worker("node-a")
    key = await stack.create_key()
    fake_ollama.fail_status = 400
    async with stack.gateway() as gw:
        await gw.wait_for_model("llama3.2")
        unknown = await gw.client.post(
            "/v1/inference", json=chat(model="no-such"), headers=as_key(key, **ASYNC)
        )
        accepted = await gw.client.post("/v1/inference", json=chat(), headers=as_key(key, **ASYNC))
        failed = await poll(gw.client, accepted.headers["location"], key)
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "model_not_found"
    assert failed.status_code >= 400
    error = failed.json()["error"]
    assert error["request_id"] == accepted.headers["x-request-id"]
    assert error["code"] in ("invalid_request", "upstream_error")


async def test_a_retried_submission_with_a_key_returns_the_same_job(
    stack: Stack, fake_ollama: FakeOllama
) -> None:
    stack.worker("node-a")
    key = await stack.create_key()
    headers = as_key(key, **ASYNC, **{"Idempotency-Key": "job-1"})
    async with stack.gateway() as gw:
        await gw.wait_for_model("llama3.2")
        first = await gw.client.post("/v1/inference", json=chat(), headers=headers)
        retried = await gw.client.post("/v1/inference", json=chat(), headers=headers)
        done = await poll(gw.client, first.headers["location"], key)
    assert first.status_code == retried.status_code == 202
    assert retried.headers["idempotent-replayed"] == "true"
    assert retried.headers["location"] == first.headers["location"]
    assert retried.content == first.content
    assert done.status_code == 200
    assert len(fake_ollama.chats) == 1
