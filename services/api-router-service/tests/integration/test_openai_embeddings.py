"""Embeddings through the gateway and real workers of both kinds: the official SDK (floats,
and base64, its default), our ``/v1/embed``, the token bucket charged with the input's
tokens, and the usage and audit records."""

from __future__ import annotations

import base64
import struct
from pathlib import Path

import httpx
import pytest

from tests.support.fake_model import embedding
from tests.support.fleet import BY_KIND, Fleet
from tests.support.limits import write_policies
from tests.support.stack import bearer
from tests.support.usage_topic import TopicReader

KINDS = sorted(BY_KIND)
TEXTS = ["the quick brown fox", "jumps"]


@pytest.mark.parametrize("kind", KINDS)
async def test_embeddings_whole_and_in_base64(fleet: Fleet, kind: str) -> None:
    model = BY_KIND[kind]
    async with fleet.client() as client:
        floats = await client.embeddings.create(model=model, input=TEXTS, encoding_format="float")
        # The SDK's default: it asks for base64 and decodes it itself.
        decoded = await client.embeddings.create(model=model, input=TEXTS)
        raw = await client.embeddings.create(model=model, input="jumps", encoding_format="base64")
        short = await client.embeddings.create(model=model, input="jumps", dimensions=4)
    expected = [embedding(text, 8) for text in TEXTS]
    assert [item.embedding for item in floats.data] == expected
    assert [item.index for item in floats.data] == [0, 1]
    assert [item.embedding for item in decoded.data] == expected
    packed = raw.data[0].embedding
    assert isinstance(packed, str)
    assert list(struct.unpack("<8f", base64.b64decode(packed))) == expected[1]
    assert short.data[0].embedding == embedding("jumps", 4)
    assert (floats.model, floats.object) == (model, "list")
    assert floats.usage.prompt_tokens == floats.usage.total_tokens == 5
    sent = fleet.backend_of(kind).embeds[-1]
    assert (sent["input"], sent["dimensions"]) == (["jumps"], 4)
    if kind == "openai":  # the adapter always asks for floats, whatever the client wants
        assert sent["encoding_format"] == "float"


async def test_the_native_embed_route(fleet: Fleet) -> None:
    async with fleet.http() as http:
        floats = await http.post("/v1/embed", json={"model": "llama3.2", "input": TEXTS})
        packed = await http.post(
            "/v1/embed",
            json={"model": "gpt-fake", "input": "jumps", "encoding_format": "base64"},
        )
    assert floats.status_code == 200, floats.text
    body = floats.json()
    assert body["embeddings"] == [embedding(text, 8) for text in TEXTS]
    assert (body["object"], body["node_id"], body["encoding_format"]) == (
        "embed",
        "node-ollama",
        "float",
    )
    assert body["usage"] == {"prompt_tokens": 5, "total_tokens": 5}
    assert body["id"] == floats.headers["x-request-id"]
    assert "inference;dur=" in floats.headers["server-timing"]
    timings = body["timings"]
    assert timings["total_ms"] >= timings["inference_ms"] > 0
    (vector,) = packed.json()["embeddings"]
    assert list(struct.unpack("<8f", base64.b64decode(vector))) == embedding("jumps", 8)


async def test_embeddings_leave_usage_and_audit_records_with_the_backend_counts(
    fleet: Fleet,
) -> None:
    async with fleet.client() as client:
        answered = {
            kind: await client.embeddings.with_raw_response.create(model=BY_KIND[kind], input=TEXTS)
            for kind in KINDS
        }
    ids = {kind: raw.headers["x-request-id"] for kind, raw in answered.items()}
    reader = TopicReader(fleet.stack.broker.bootstrap, fleet.stack.usage_topic)
    records = {r["request_id"]: r for r in await reader.read_covering(set(ids.values()))}
    for kind, request_id in ids.items():
        record = records[request_id]
        assert (record["operation"], record["model"], record["node_id"]) == (
            "embeddings",
            BY_KIND[kind],
            f"node-{kind}",
        )
        assert (record["prompt_tokens"], record["completion_tokens"]) == (5, 0)
        assert (record["status"], record["http_status"]) == ("ok", 200)
        audit = await fleet.audit_record(request_id)
        assert (audit["operation"], audit["prompt_tokens"]) == ("embeddings", 5)
    async with httpx.AsyncClient(base_url=fleet.gateway.url) as http:
        metrics = (await http.get("/metrics")).text
    assert 'gen_ai_operation_name="embeddings"' in metrics


async def test_embedding_inputs_are_charged_against_the_token_bucket(
    fleet: Fleet, tmp_path: Path
) -> None:
    plan = {"tokens_per_minute": 100, "budget": {"per_month": 1_000_000, "unit": "tokens"}}
    policies = write_policies(
        tmp_path / "p.yaml",
        {
            "plans": {"default": {"requests_per_second": 1000}, "tight": plan},
            "tenants": {"tight": {"plan": "tight"}},
        },
    )
    key = await fleet.stack.create_key("tight")
    sixty_words = " ".join(["word"] * 60)  # 299 characters: 75 tokens reserved, 60 counted
    async with fleet.stack.gateway(limits={"policies_file": str(policies)}) as gw:
        await gw.wait_for_model("llama3.2")

        async def embed(text: str) -> httpx.Response:
            body = {"model": "llama3.2", "input": text}
            return await gw.client.post("/v1/embeddings", json=body, headers=bearer(key))

        too_big = await embed("x" * 404)  # 101 tokens: more than the bucket ever holds
        first = await embed(sixty_words)
        await gw.services.admission.settled()
        second = await embed("y" * 200)  # 50 tokens, with some 40 left
        month = await gw.client.get("/v1/usage", headers=bearer(key))
    assert too_big.status_code == 429
    assert "this request alone exceeds the limit" in too_big.json()["error"]["message"]
    assert "retry-after" not in too_big.headers
    assert first.status_code == 200, first.text
    assert first.json()["usage"]["prompt_tokens"] == 60
    assert second.status_code == 429
    assert second.json()["error"]["code"] == "rate_limited"
    assert second.json()["error"]["message"].startswith("rate limit exceeded: tenant.tokens")
    assert int(second.headers["retry-after"]) >= 1
    # The month's counters and the budget hold what the backend counted, not the estimate.
    spent = month.json()
    assert (spent["requests"], spent["prompt_tokens"], spent["completion_tokens"]) == (1, 60, 0)
    assert spent["budget"]["spent"] == 60
