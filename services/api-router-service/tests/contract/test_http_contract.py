"""Real HTTP answers against contracts/*.schema.json and the served OpenAPI document."""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_openapi

from api_router.api.contract_registry import CONTRACTS, contract_schema
from api_router.contracts import contract_names, load_contract
from tests.support.fake_ollama import FakeOllama
from tests.support.sse import parse_sse
from tests.support.stack import Stack, chat


def validator(name: str) -> Draft202012Validator:
    schema = load_contract(name)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


@pytest.mark.parametrize("name", sorted(CONTRACTS))
def test_contract_files_are_what_the_code_decodes_and_encodes(name: str) -> None:
    assert load_contract(name) == contract_schema(name), (
        f"contracts/{name}.schema.json is stale: run `python -m api_router.api.contract_registry`"
    )


@pytest.mark.parametrize("name", contract_names())
def test_every_contract_is_a_valid_2020_12_schema(name: str) -> None:
    Draft202012Validator.check_schema(load_contract(name))


async def test_real_answers_match_their_contracts(stack: Stack) -> None:
    stack.worker("node-a")
    key = await stack.create_key()
    async with stack.gateway() as gw:
        await gw.wait_for_model("llama3.2")
        ok = await gw.client.post(
            "/v1/inference",
            json=chat(options={"temperature": 0.2, "max_tokens": 8}, metadata={"a": "b"}),
            headers={"X-API-Key": key},
        )
        errors = [
            await gw.client.post("/v1/inference", json=chat()),
            await gw.client.post("/v1/inference", json={"model": 1}, headers={"X-API-Key": key}),
            await gw.client.post("/v1/inference", json=chat("nope"), headers={"X-API-Key": key}),
            await gw.client.get("/nowhere"),
        ]
    assert ok.status_code == 200
    validator("inference.response").validate(ok.json())
    assert [e.status_code for e in errors] == [401, 400, 404, 404]
    for error in errors:
        validator("error").validate(error.json())


@pytest.mark.parametrize(
    "body",
    [
        chat(),
        chat(options={"temperature": 0, "top_p": 1, "max_tokens": 1, "stop": ["x"], "seed": -1}),
        chat(metadata={"session_id": "abc"}, stream=False),
        {"model": "m", "messages": []},
        {"model": "m", "messages": [{"role": "robot", "content": "x"}]},
        {"model": "m", "messages": [{"role": "user", "content": "x"}], "unknown": True},
        {"model": "m"},
    ],
)
async def test_the_request_schema_and_the_decoder_agree(stack: Stack, body: dict[str, Any]) -> None:
    """A body the schema accepts is accepted by the gateway, and one it rejects is a 400."""
    schema_ok = validator("inference.request").is_valid(body)
    key = await stack.create_key()
    async with stack.gateway() as gw:
        response = await gw.client.post("/v1/inference", json=body, headers={"X-API-Key": key})
    assert (response.status_code != 400) == schema_ok, response.text


async def test_the_openapi_document_is_valid_and_uses_the_contract_schemas(stack: Stack) -> None:
    async with stack.gateway() as gw:
        response = await gw.client.get("/openapi.json")
    document = response.json()
    validate_openapi(document)
    assert document["openapi"] == "3.1.0"
    components = document["components"]["schemas"]
    for name in CONTRACTS:
        contract = load_contract(name)
        title = contract["$ref"].rsplit("/", 1)[1]
        assert components[title] == _with_component_refs(contract["$defs"][title]), name
    operation = document["paths"]["/v1/inference"]["post"]
    assert operation["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/InferenceRequest"
    }
    assert set(operation["responses"]) >= {
        "200",
        "400",
        "401",
        "403",
        "404",
        "413",
        "415",
        "502",
        "503",
        "504",
    }


def _with_component_refs(schema: Any) -> Any:
    """The same schema with ``#/$defs/X`` references (``$ref``, and a discriminator's
    mapping) spelled as OpenAPI components."""
    if isinstance(schema, dict):
        return {key: _with_component_refs(value) for key, value in schema.items()}
    if isinstance(schema, list):
        return [_with_component_refs(item) for item in schema]
    if isinstance(schema, str) and schema.startswith("#/$defs/"):
        return schema.replace("#/$defs/", "#/components/schemas/")
    return schema


async def test_streamed_answers_match_their_contracts(
    stack: Stack, fake_ollama: FakeOllama
) -> None:
    fake_ollama.chunk_delay_s = 0.005
    stack.worker("node-a")
    key = await stack.create_key()
    async with stack.gateway() as gw:
        await gw.wait_for_model("llama3.2")
        ours = await gw.client.post(
            "/v1/inference", json=chat(stream=True), headers={"X-API-Key": key}
        )
        theirs = await gw.client.post(
            "/v1/chat/completions",
            json=chat(stream=True, stream_options={"include_usage": True}),
            headers={"Authorization": f"Bearer {key}"},
        )
        fake_ollama.fail_after_chunks = 1
        failed = await gw.client.post(
            "/v1/inference", json=chat(stream=True), headers={"X-API-Key": key}
        )
    events, _ = parse_sse(ours.text)
    assert [e.event for e in events].count("chunk") > 1
    for event in events:
        name = {"chunk": "inference.chunk", "done": "inference.done"}[event.event]
        validator(name).validate(event.json())
    frames, _ = parse_sse(theirs.text)
    assert frames[-1].data == "[DONE]"
    for frame in frames[:-1]:
        validator("chat.completion.chunk").validate(frame.json())
    failure, _ = parse_sse(failed.text)
    assert failure[-1].event == "error"
    validator("error").validate(failure[-1].json())


async def test_openai_answers_match_their_contracts(stack: Stack) -> None:
    stack.worker("node-a")
    key = await stack.create_key()
    bearer = {"Authorization": f"Bearer {key}"}
    async with stack.gateway() as gw:
        await gw.wait_for_model("llama3.2")
        completion = await gw.client.post("/v1/chat/completions", json=chat(), headers=bearer)
        listing = await gw.client.get("/v1/models", headers=bearer)
        errors = [
            await gw.client.post("/v1/chat/completions", json=chat()),
            await gw.client.post("/v1/chat/completions", json=chat(n=3), headers=bearer),
            await gw.client.get("/v1/models"),
        ]
    assert completion.status_code == 200 and listing.status_code == 200
    validator("chat.completion").validate(completion.json())
    validator("model.list").validate(listing.json())
    assert [e.status_code for e in errors] == [401, 400, 401]
    for error in errors:
        validator("openai.error").validate(error.json())
    assert errors[1].json()["error"]["param"] == "n"


_CALL = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}


@pytest.mark.parametrize(
    "body",
    [
        chat(),
        chat(temperature=0.5, top_p=1, max_tokens=4, stop="x", seed=1, user="u", n=1),
        chat(messages=[{"role": "developer", "content": [{"type": "text", "text": "hi"}]}]),
        chat(stream=True, stream_options={"include_usage": True}),
        {"model": "m", "messages": []},
        chat(tools=[{"type": "function", "function": {"name": "f"}}], tool_choice="required"),
        chat(response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}),
        chat(logit_bias={"42": 1.5}, presence_penalty=-2, frequency_penalty=2),
        chat(
            messages=[
                {"role": "assistant", "tool_calls": [_CALL]},
                {"role": "tool", "tool_call_id": "c1", "content": "42"},
            ]
        ),
        {"model": "m", "messages": [{"role": "user", "content": "x"}], "tools": [{"type": "x"}]},
        chat(messages=[{"role": "tool", "content": "no call id"}]),
        chat(logit_bias={"token": 1}),
        chat(response_format={"type": "json_schema"}),
        {"model": "m"},
    ],
)
async def test_the_chat_request_schema_and_the_decoder_agree(
    stack: Stack, body: dict[str, Any]
) -> None:
    schema_ok = validator("chat.completion.request").is_valid(body)
    key = await stack.create_key()
    async with stack.gateway() as gw:
        response = await gw.client.post(
            "/v1/chat/completions", json=body, headers={"X-API-Key": key}
        )
    assert (response.status_code != 400) == schema_ok, response.text


@pytest.mark.parametrize(
    "body",
    [
        {"model": "m", "input": "a"},
        {"model": "m", "input": ["a", "b"], "encoding_format": "base64", "dimensions": 8},
        {"model": "m", "input": []},
        {"model": "m", "input": [1, 2]},
        {"model": "m", "input": "a", "encoding_format": "int8"},
        {"model": "m", "input": ""},
    ],
)
async def test_the_embedding_request_schema_and_the_decoder_agree(
    stack: Stack, body: dict[str, Any]
) -> None:
    schema_ok = validator("embedding.request").is_valid(body)
    key = await stack.create_key()
    async with stack.gateway() as gw:
        response = await gw.client.post("/v1/embeddings", json=body, headers={"X-API-Key": key})
    assert (response.status_code != 400) == schema_ok, response.text
