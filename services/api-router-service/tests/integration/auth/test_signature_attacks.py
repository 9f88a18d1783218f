"""What an attacker who sees or shapes signed requests can try, and what they get."""

from __future__ import annotations

import asyncio
import json
import math
import time
from typing import Any

import httpx

from api_router.auth.content_digest import content_digest
from tests.support.signing import SigningKey, fresh_nonce, sign
from tests.support.stack import Stack, chat

BODY = json.dumps(chat(model="nope")).encode()
JSON = {"content-type": "application/json"}


def code(response: httpx.Response) -> tuple[int, str]:
    body: dict[str, Any] = response.json()["error"]
    return response.status_code, str(body["code"])


async def test_a_captured_request_replayed_on_the_same_and_another_replica(stack: Stack) -> None:
    key = SigningKey.of(await stack.issue_key())
    headers = {**JSON, **sign(key, "POST", "/v1/inference", BODY)}
    async with stack.gateway() as first, stack.gateway() as second:
        original = await first.client.post("/v1/inference", content=BODY, headers=headers)
        same = await first.client.post("/v1/inference", content=BODY, headers=headers)
        other = await second.client.post("/v1/inference", content=BODY, headers=headers)
    assert code(original) == (404, "model_not_found")  # authenticated, then routed
    assert code(same) == (401, "replayed_request")
    assert code(other) == (401, "replayed_request")


async def test_changing_what_was_signed(stack: Stack) -> None:
    key = SigningKey.of(await stack.issue_key())
    async with stack.gateway() as gw:
        post = gw.client.post
        signed = {**JSON, **sign(key, "POST", "/v1/inference", BODY)}
        tampered = await post(
            "/v1/inference", content=BODY.replace(b"nope", b"nopx"), headers=signed
        )
        other_body = json.dumps(chat(model="other")).encode()
        digest = {"content-digest": content_digest(other_body)}
        foreign = {**JSON, **sign(key, "POST", "/v1/inference", BODY, headers=digest)}
        foreign_digest = await post("/v1/inference", content=BODY, headers=foreign)
        resigned = {**JSON, **sign(key, "POST", "/v1/inference", BODY)}
        other_path = await post("/v1/chat/completions", content=BODY, headers=resigned)
        other_query = await gw.client.get(
            "/v1/models?page=2", headers=sign(key, "GET", "/v1/models", query="page=1")
        )
        added_query = await gw.client.get(
            "/v1/models?page=2", headers=sign(key, "GET", "/v1/models")
        )
        other_method = await gw.client.get("/v1/models", headers=sign(key, "POST", "/v1/models"))
    assert code(tampered) == (401, "digest_mismatch")
    assert code(foreign_digest) == (401, "digest_mismatch")
    assert code(other_path) == (401, "invalid_signature")
    assert code(other_query) == (401, "invalid_signature")
    assert code(added_query) == (401, "malformed_signature")  # "@query" is required now
    assert code(other_method) == (401, "invalid_signature")


async def test_created_301_s_off_either_way_and_a_missing_nonce(stack: Stack) -> None:
    key = SigningKey.of(await stack.issue_key())
    async with stack.gateway() as gw:
        get = gw.client.get
        # Whole seconds, rounded away from now: at least 301 s off when the gateway looks.
        past_at, future_at = math.floor(time.time()) - 301, math.ceil(time.time()) + 301
        past = await get("/v1/models", headers=sign(key, "GET", "/v1/models", created=past_at))
        future = await get("/v1/models", headers=sign(key, "GET", "/v1/models", created=future_at))
        no_created = await get("/v1/models", headers=sign(key, "GET", "/v1/models", created=None))
        no_nonce = await get("/v1/models", headers=sign(key, "GET", "/v1/models", nonce=None))
        short_nonce = await get(
            "/v1/models", headers=sign(key, "GET", "/v1/models", nonce="x" * 15)
        )
    assert code(past) == (401, "signature_expired")
    assert code(future) == (401, "signature_expired")
    assert "in the future" in future.json()["error"]["message"]
    assert code(no_created) == (401, "malformed_signature")
    assert code(no_nonce) == (401, "malformed_signature")
    assert code(short_nonce) == (401, "malformed_signature")


async def test_a_nonce_is_remembered_for_the_window_and_accepted_after_it(stack: Stack) -> None:
    key = SigningKey.of(await stack.issue_key())
    nonce = fresh_nonce()
    async with stack.gateway() as gw:
        first = await gw.client.get(
            "/v1/models", headers=sign(key, "GET", "/v1/models", nonce=nonce)
        )
        with stack.redis.client() as client:
            ttl_ms = client.pttl(stack.keys.nonce(key.key_id, nonce))
    assert first.status_code == 200
    assert 590_000 < ttl_ms <= 600_000  # the default window: 600 s
    # A short window (and skew) stands in for waiting 600 s.
    short = {"auth": {"max_clock_skew_s": 1, "nonce_window_s": 2}}
    nonce = fresh_nonce()
    async with stack.gateway(**short) as gw:
        once = await gw.client.get(
            "/v1/models", headers=sign(key, "GET", "/v1/models", nonce=nonce)
        )
        again = await gw.client.get(
            "/v1/models", headers=sign(key, "GET", "/v1/models", nonce=nonce)
        )
        with stack.redis.client() as client:
            while client.exists(stack.keys.nonce(key.key_id, nonce)):  # noqa: ASYNC110
                await asyncio.sleep(0.1)  # Redis expiring the nonce is what is awaited
        later = await gw.client.get(
            "/v1/models", headers=sign(key, "GET", "/v1/models", nonce=nonce)
        )
    assert once.status_code == 200
    assert code(again) == (401, "replayed_request")
    assert later.status_code == 200


async def test_oversize_malformed_and_non_ascii_signature_headers(stack: Stack) -> None:
    key = SigningKey.of(await stack.issue_key())
    good = sign(key, "GET", "/v1/models")
    async with stack.gateway() as gw:
        get = gw.client.get
        long_input = good["signature-input"] + ';tag="' + "x" * 5000 + '"'
        oversize = await get(
            "/v1/models", headers={"signature-input": long_input, "signature": good["signature"]}
        )
        garbage = await get(
            "/v1/models", headers={"signature-input": "sig1=(((", "signature": "sig1=:x:"}
        )
        unpaired = {"signature-input": good["signature-input"], "signature": "other=:AAAA:"}
        no_value = await get("/v1/models", headers=unpaired)
        non_ascii_input = good["signature-input"].replace(key.key_id, "kéyé").encode()
        non_ascii = await get(
            "/v1/models",
            headers={b"signature-input": non_ascii_input, b"signature": good["signature"].encode()},
        )
        foreign_shape = await get(
            "/v1/models", headers=sign(key, "GET", "/v1/models", keyid="KEY-1")
        )
        with_params = good["signature-input"].replace(
            '"@path")', '"@path" "@query-param";name="x")'
        )
        params = await get("/v1/models", headers={**good, "signature-input": with_params})
    for response in (oversize, garbage, no_value, non_ascii):
        assert code(response) == (401, "malformed_signature")
    assert "4096" in oversize.json()["error"]["message"]
    assert code(foreign_shape) == (401, "invalid_signature")
    assert code(params) == (401, "malformed_signature")
    assert "parameters are not supported" in params.json()["error"]["message"]


async def test_header_name_case_does_not_matter_on_the_wire(stack: Stack) -> None:
    key = SigningKey.of(await stack.issue_key())
    gateway = stack.gateway_process(check="healthz")
    signed = sign(key, "POST", "/v1/inference", BODY)
    headers = [
        (b"CONTENT-TYPE", b"application/json"),
        (b"Content-Digest", signed["content-digest"].encode()),
        (b"SIGNATURE-INPUT", signed["signature-input"].encode()),
        (b"signature", signed["signature"].encode()),
    ]
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        headers_for_host = sign(
            key, "POST", "/v1/inference", BODY, components=["@method", "@path", "content-digest"]
        )
        # The authority is not covered, so the same signature verifies on any host name.
        response = await client.post(
            "/v1/inference",
            content=BODY,
            headers=[
                (b"CONTENT-TYPE", b"application/json"),
                (b"CONTENT-DIGEST", headers_for_host["content-digest"].encode()),
                (b"Signature-Input", headers_for_host["signature-input"].encode()),
                (b"SIGNATURE", headers_for_host["signature"].encode()),
            ],
        )
        mixed = await client.post("/v1/inference", content=BODY, headers=headers)
    assert code(response) == (404, "model_not_found")
    assert code(mixed) == (404, "model_not_found")
