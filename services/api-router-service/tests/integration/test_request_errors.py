"""Every refusal answers with the right status and catalog code, and nothing breaks."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from api_router.keyspace import WORKER_GROUP
from tests.support.fake_ollama import FakeOllama
from tests.support.servers import eventually
from tests.support.stack import Gateway, Stack, chat, node_health


def error_of(response: Any) -> dict[str, Any]:
    body: dict[str, Any] = response.json()["error"]
    assert set(body) == {"type", "code", "message", "request_id"}
    assert body["request_id"] == response.headers["x-request-id"]
    assert "Traceback" not in body["message"]
    return body


def ghost_node(stack: Stack, node_id: str = "ghost", **fields: Any) -> None:
    """A healthy-looking node with a job stream but no worker behind it."""
    stack.put_health(node_health(node_id, models_loaded=["llama3.2"], **fields))
    with stack.redis.client() as client:
        client.xgroup_create(stack.keys.job_stream(node_id), WORKER_GROUP, id="0", mkstream=True)


async def post(gw: Gateway, body: Any = None, key: str | None = None, **kwargs: Any) -> Any:
    headers = kwargs.pop("headers", {})
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    return await gw.client.post("/v1/inference", json=body, headers=headers, **kwargs)


# --- authentication and scope -------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "missing_credentials"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "invalid_api_key"),
        ({"Authorization": "Bearer "}, "invalid_api_key"),
        ({"Authorization": "Bearer not-a-key"}, "invalid_api_key"),
        ({"X-API-Key": "ark_kaaaaaaaaaaaa_" + "a" * 32}, "invalid_api_key"),
    ],
)
async def test_missing_or_bad_credentials_are_401(
    stack: Stack, headers: dict[str, str], code: str
) -> None:
    async with stack.gateway() as gw:
        response = await post(gw, chat(), headers=headers)
    assert response.status_code == 401
    assert error_of(response)["code"] == code


async def test_a_known_key_id_with_a_wrong_secret_is_401(stack: Stack) -> None:
    key = await stack.create_key()
    forged = key[:-4] + ("aaaa" if not key.endswith("aaaa") else "bbbb")
    async with stack.gateway() as gw:
        response = await post(gw, chat(), forged)
    assert response.status_code == 401
    assert error_of(response)["code"] == "invalid_api_key"


async def test_a_key_without_the_inference_scope_is_403(stack: Stack) -> None:
    key = await stack.create_key("acme", scopes=["audit:read"])
    async with stack.gateway() as gw:
        response = await post(gw, chat(), key)
    assert response.status_code == 403
    assert error_of(response)["code"] == "insufficient_scope"


# --- the body ------------------------------------------------------------------------


@pytest.fixture
async def authed(stack: Stack) -> AsyncIterator[tuple[Gateway, str]]:
    key = await stack.create_key()
    async with stack.gateway(server={"max_body_bytes": 4096}) as gw:
        yield gw, key


@pytest.mark.parametrize(
    ("content", "path_in_message"),
    [
        (b"{not json", "not valid JSON"),
        (b'{"model": 1, "messages": []}', "$.model"),
        (b'{"model": "m", "messages": []}', "$.messages"),
        (b'{"model": "m", "messages": [{"role": "bot", "content": "x"}]}', "$.messages[0].role"),
        (b'{"model": "m", "messages": [{"role": "user"}]}', "content"),
        (b'{"model": "m", "messages": [{"role": "user", "content": "x"}], "extra": 1}', "extra"),
        (
            b'{"model": "m", "messages": [{"role": "user", "content": "x"}], '
            b'"options": {"temperature": 3}}',
            "$.options.temperature",
        ),
        (b'{"model": "bad model name", "messages": [{"role": "user", "content": "x"}]}', "$.model"),
        (b"[" * 1500 + b"]" * 1500, "Expected `object`"),
        (
            b'{"model": "m", "messages": [{"role": "user", "content": "x"}], "options": '
            + b"[" * 1500
            + b"]" * 1500
            + b"}",
            "$.options",
        ),
    ],
)
async def test_a_bad_body_is_400_naming_the_field(
    authed: tuple[Gateway, str], content: bytes, path_in_message: str
) -> None:
    gw, key = authed
    response = await post(
        gw, key=key, content=content, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    body = error_of(response)
    assert body["code"] == "invalid_request"
    assert path_in_message in body["message"]


async def test_deep_nesting_far_past_the_recursion_limit_is_400_not_500(stack: Stack) -> None:
    key = await stack.create_key()
    content = b'{"model": "m", "messages": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"
    async with stack.gateway() as gw:
        response = await post(
            gw, key=key, content=content, headers={"content-type": "application/json"}
        )
    assert response.status_code == 400
    assert error_of(response)["code"] == "invalid_request"


@pytest.mark.parametrize(
    "body",
    [
        chat(messages=[{"role": "user", "content": "x"}] * 257),
        chat(metadata={f"k{i}": "v" for i in range(17)}),
        chat(options={"stop": ["a"] * 9}),
    ],
    ids=["257-messages", "17-metadata-pairs", "9-stop-words"],
)
async def test_limits_on_list_sizes_are_400(stack: Stack, body: dict[str, Any]) -> None:
    key = await stack.create_key()
    async with stack.gateway() as gw:
        response = await post(gw, body, key)
    assert response.status_code == 400
    assert error_of(response)["code"] == "invalid_request"


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", ""])
async def test_a_non_json_content_type_is_415(
    authed: tuple[Gateway, str], content_type: str
) -> None:
    gw, key = authed
    response = await post(gw, key=key, content=b"{}", headers={"content-type": content_type})
    assert response.status_code == 415
    assert error_of(response)["code"] == "unsupported_media_type"


async def test_a_declared_length_over_the_limit_is_413(authed: tuple[Gateway, str]) -> None:
    gw, key = authed
    response = await post(gw, chat(content="x" * 5000), key)
    assert response.status_code == 413
    assert error_of(response)["code"] == "payload_too_large"


async def test_a_chunked_body_over_the_limit_is_413(authed: tuple[Gateway, str]) -> None:
    gw, key = authed
    sent: list[int] = []

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(100):
            sent.append(1)
            yield b" " * 1024

    response = await post(
        gw, key=key, content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert error_of(response)["code"] == "payload_too_large"


# --- routing and dispatch -------------------------------------------------------------


async def test_an_unknown_model_is_404_model_not_found(stack: Stack) -> None:
    stack.worker("node-a")
    key = await stack.create_key()
    async with stack.gateway() as gw:
        await gw.wait_for_model("llama3.2")
        response = await post(gw, chat("no-such-model"), key)
    assert response.status_code == 404
    assert error_of(response)["code"] == "model_not_found"


async def test_a_known_model_with_no_healthy_node_is_503_no_capacity(stack: Stack) -> None:
    stack.put_health(node_health("hot", models_loaded=["llama3.2"], temp_celsius=90.0))
    key = await stack.create_key()
    async with stack.gateway() as gw:
        response = await post(gw, chat("llama3.2"), key)
    assert response.status_code == 503
    assert error_of(response)["code"] == "no_capacity"


async def test_nodes_at_their_backlog_limit_are_503_no_capacity(stack: Stack) -> None:
    ghost_node(stack)
    with stack.redis.client() as client:  # one job already waits on the only node
        client.xadd(stack.keys.job_stream("ghost"), {"v": "1"})
    key = await stack.create_key()
    async with stack.gateway(dispatch={"node_backlog_limit": 1}) as gw:
        await gw.wait_for_model("llama3.2")
        response = await post(gw, chat(), key)
    assert response.status_code == 503
    assert error_of(response)["code"] == "no_capacity"
    with stack.redis.client() as client:
        assert client.xlen(stack.keys.job_stream("ghost")) == 1  # nothing was added


async def test_a_full_node_is_skipped_for_the_next_candidate(stack: Stack) -> None:
    ghost_node(stack, "aaa-full")  # sorts first among equals
    with stack.redis.client() as client:
        client.xadd(stack.keys.job_stream("aaa-full"), {"v": "1"})
    stack.worker("node-a")
    key = await stack.create_key()
    async with stack.gateway(dispatch={"node_backlog_limit": 1}) as gw:
        await gw.wait_for_model("llama3.2", nodes=2)
        response = await post(gw, chat(), key)
    assert response.status_code == 200, response.text
    assert response.json()["node_id"] == "node-a"


async def test_no_accepted_in_time_is_504_and_the_job_is_cancelled(stack: Stack) -> None:
    ghost_node(stack)
    key = await stack.create_key()
    async with stack.gateway(dispatch={"accept_timeout_s": 0.3}) as gw:
        await gw.wait_for_model("llama3.2")
        started = time.monotonic()
        response = await post(gw, chat(), key)
        elapsed = time.monotonic() - started
        reply_stream = gw.services.replies.stream
    # The gateway has shut down: it must have written the cancel mark before leaving.
    assert response.status_code == 504
    assert error_of(response)["code"] == "upstream_timeout"
    assert "did not accept" in error_of(response)["message"]
    assert elapsed < 5  # the accept timeout, not the request timeout
    cancel_key = stack.keys.cancel(reply_stream, response.headers["x-request-id"], 1)
    with stack.redis.client() as client:
        assert client.exists(cancel_key)
        assert client.pttl(cancel_key) > 0


async def test_no_done_before_the_request_timeout_is_504(
    stack: Stack, fake_ollama: FakeOllama
) -> None:
    fake_ollama.delay_s = 3.0
    stack.worker("node-a")
    key = await stack.create_key()
    async with stack.gateway(dispatch={"request_timeout_s": 1.0}) as gw:
        await gw.wait_for_model("llama3.2")
        response = await post(gw, chat(), key)
    assert response.status_code == 504
    assert "did not finish" in error_of(response)["message"]


async def test_a_worker_error_event_is_502_with_the_reason(
    stack: Stack, fake_ollama: FakeOllama
) -> None:
    stack.worker("node-a")
    key = await stack.create_key()
    async with stack.gateway() as gw:
        await gw.wait_for_model("llama3.2")
        fake_ollama.fail_status = 500
        response = await post(gw, chat(), key)
    assert response.status_code == 502
    body = error_of(response)
    assert body["code"] == "upstream_error"
    assert "node-a" in body["message"] and "backend_error" in body["message"]
    assert "HTTP 500" in body["message"]


# --- the framework's own answers ------------------------------------------------------


async def test_unknown_routes_and_methods_answer_in_the_error_shape(stack: Stack) -> None:
    async with stack.gateway() as gw:
        missing = await gw.client.get("/v1/nothing")
        wrong_method = await gw.client.get("/v1/inference")
    assert (missing.status_code, error_of(missing)["code"]) == (404, "not_found")
    assert (wrong_method.status_code, error_of(wrong_method)["code"]) == (
        405,
        "method_not_allowed",
    )


async def test_a_node_whose_backend_goes_away_is_unavailable_not_unknown(stack: Stack) -> None:
    backend = FakeOllama().start()
    stack.worker("node-a", backend_url=backend.url)
    key = await stack.create_key()
    async with stack.gateway() as gw:
        await gw.wait_for_model("llama3.2")
        backend.stop()  # the worker's next health beat finds its backend unreachable
        await eventually(
            lambda: gw.services.health.snapshot.states.get("node-a") == "unavailable",
            what="node-a to turn unavailable",
        )
        response = await post(gw, chat(), key)
    assert response.status_code == 503
    assert error_of(response)["code"] == "no_capacity"
