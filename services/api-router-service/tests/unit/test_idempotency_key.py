"""The Idempotency-Key field, the request fingerprint and the Prefer preferences."""

from __future__ import annotations

import pytest
from starlette.datastructures import Headers

from api_router.api.prefer import preferences
from api_router.errors import ApiError
from api_router.idempotency.request_key import parse_key, request_key


@pytest.mark.parametrize(
    ("value", "key"),
    [
        ("order-42", "order-42"),
        ('"order-42"', "order-42"),
        ('"a \\"quoted\\" key"', 'a "quoted" key'),
        ("  padded  ", "padded"),
        ("x" * 255, "x" * 255),
        ('"' + "y" * 255 + '"', "y" * 255),
    ],
)
def test_a_key_is_taken_bare_or_quoted(value: str, key: str) -> None:
    assert parse_key(value) == key


@pytest.mark.parametrize(
    "value",
    ["", "   ", '""', "x" * 256, '"' + "y" * 256 + '"', "a\x01b", "caf\xe9", '"open', '"a";p=1'],
)
def test_anything_else_is_refused(value: str) -> None:
    with pytest.raises(ApiError) as refused:
        parse_key(value)
    assert (refused.value.code, refused.value.status) == ("invalid_idempotency_key", 400)


def test_the_scope_is_per_tenant_and_the_fingerprint_per_request() -> None:
    one = request_key("acme", "k", "POST", "/v1/inference", b"{}")
    assert request_key("acme", "k", "POST", "/v1/inference", b"{}") == one
    assert request_key("globex", "k", "POST", "/v1/inference", b"{}").scope != one.scope
    other_body = request_key("acme", "k", "POST", "/v1/inference", b"{ }")
    other_path = request_key("acme", "k", "POST", "/v1/chat/completions", b"{}")
    assert other_body.scope == other_path.scope == one.scope
    assert len({one.fingerprint, other_body.fingerprint, other_path.fingerprint}) == 3
    assert len(one.fingerprint) == 64  # what claim.lua's fixed offsets expect


@pytest.mark.parametrize(
    ("fields", "wait_s", "respond_async"),
    [
        ([], None, False),
        (["respond-async"], None, True),
        (["Respond-Async, wait=10"], 10.0, True),
        (["wait=5", "wait=7"], 5.0, False),
        (['wait="3"; x=1'], 3.0, False),
        (["wait=soon", "handling=lenient"], None, False),
        (["0"], None, False),
    ],
)
def test_preferences(fields: list[str], wait_s: float | None, respond_async: bool) -> None:
    headers = Headers(raw=[(b"prefer", field.encode()) for field in fields])
    found = preferences(headers)
    assert (found.wait_s, found.respond_async) == (wait_s, respond_async)
