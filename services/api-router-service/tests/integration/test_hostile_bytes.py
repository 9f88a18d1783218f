"""Bytes no decoder expects, against `api-router serve` on real uvicorn: every one is a 400
naming the field, and the one real internal error is logged with its request id."""

from __future__ import annotations

import json
from typing import Any

from tests.support.raw_http import RawAnswer, exchange
from tests.support.stack import Stack

BAD = b"caf\xc3 \xff\xfe"  # a cut multi-byte sequence, then bytes UTF-8 never uses


def post(port: int, method: str, path: str, key: str, body: bytes) -> RawAnswer:
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: x\r\nX-API-Key: {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    [answer] = exchange(port, head + body)
    return answer


async def test_invalid_utf8_in_any_body_is_400_naming_the_field(stack: Stack) -> None:
    gateway = stack.gateway_process(check="healthz")
    key = await stack.create_key()
    admin = await stack.create_key("ops", scopes=("admin",))
    chat_body = b'{"model": "m", "messages": [{"role": "user", "content": "' + BAD + b'"}]}'
    routing = "/v1/admin/routing"
    cases: dict[tuple[str, str], tuple[str, bytes, str]] = {
        ("POST", "/v1/inference"): (key, chat_body, "$.messages[0].content"),
        ("POST", "/v1/chat/completions"): (key, chat_body, "$.messages[0].content"),
        ("PUT", f"{routing}/models/m/weights"): (
            admin,
            b'{"weights": {"edge": 1}, "reason": "' + BAD + b'"}',
            "$.reason",
        ),
        ("PUT", f"{routing}/models/m/pin"): (
            admin,
            b'{"nodes": ["n"], "reason": "' + BAD + b'"}',
            "$.reason",
        ),
        ("POST", f"{routing}/nodes/n/drain"): (admin, b'{"reason": "' + BAD + b'"}', "$.reason"),
        ("POST", "/v1/admin/keys"): (admin, b'{"tenant": "t", "name": "' + BAD + b'"}', "$.name"),
    }
    for (method, path), (caller, body, field) in cases.items():
        answer = post(gateway.port, method, path, caller, body)
        assert answer.status == 400, (path, answer.body)
        error = answer.error()
        assert error["code"] == "invalid_request", path
        assert f"not valid UTF-8 in {field}" in error["message"], (path, error["message"])
        assert error["request_id"] == answer.headers["x-request-id"]
    openai = post(gateway.port, "POST", "/v1/chat/completions", key, chat_body).error()
    assert openai["param"] == "messages[0].content"


async def test_invalid_utf8_anywhere_in_a_body_is_400(stack: Stack) -> None:
    gateway = stack.gateway_process(check="healthz")
    key = await stack.create_key()
    bodies: dict[bytes, str] = {
        # in a key: the object holding it is named
        b'{"model": "m", "metadata": {"' + BAD + b'": "x"}, "messages": []}': "in $.metadata",
        b'{"model": "' + BAD + b'"}': "in $.model",
        b'{"model": "m", "messages": [{"role": "user", "content": "fine"}, {"role": "user", '
        b'"content": "' + BAD + b'"}]}': "in $.messages[1].content",
        b'{"model": ' + BAD + b"}": "not valid JSON",  # outside any string
        b"\xef\xbb\xbf{}": "not valid JSON",  # a byte order mark
    }
    for body, expected in bodies.items():
        answer = post(gateway.port, "POST", "/v1/inference", key, body)
        assert answer.status == 400, (body, answer.body)
        assert expected in answer.error()["message"], (body, answer.error())


async def test_a_traceback_is_logged_with_the_request_id_it_answered(stack: Stack) -> None:
    """A key record corrupted in Redis is a real internal error: 500, and the traceback's
    log line carries the request id the client was given."""
    gateway = stack.gateway_process(check="healthz")
    admin = await stack.create_key("ops", scopes=("admin",))
    victim = await stack.issue_key("acme")
    with stack.redis.client() as client:
        client.set(stack.keys.api_key(victim.record.id), b"{not json")
    answer = get(gateway.port, f"/v1/admin/keys/{victim.record.id}", admin)
    assert answer.status == 500
    request_id = answer.error()["request_id"]
    lines = [_json(line) for line in gateway.log().splitlines() if line.startswith("{")]
    tracebacks = [line for line in lines if "exc_info" in line]
    assert [line["request_id"] for line in tracebacks] == [request_id]
    assert "Traceback" not in answer.body.decode()


def get(port: int, path: str, key: str) -> RawAnswer:
    raw = f"GET {path} HTTP/1.1\r\nHost: x\r\nX-API-Key: {key}\r\nConnection: close\r\n\r\n"
    [answer] = exchange(port, raw.encode())
    return answer


def _json(line: str) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(line)
    return parsed
