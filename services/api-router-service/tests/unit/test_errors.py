"""The error catalog and its one JSON shape."""

from __future__ import annotations

import json

import pytest

from api_router.api.errors import CATALOG, ApiError, StoreUnavailable, error_body, error_for_status


def test_the_body_has_the_one_shape() -> None:
    body = json.loads(error_body(ApiError("no_capacity", "busy"), "req_1"))
    assert body == {"error": {"type": "overloaded_error", "code": "no_capacity",
                              "message": "busy", "request_id": "req_1"}}  # fmt: skip


def test_codes_outside_the_catalog_are_refused() -> None:
    with pytest.raises(ValueError):
        ApiError("made_up", "nope")


def test_statuses_match_the_design() -> None:
    expected = {"invalid_request": 400, "invalid_api_key": 401, "insufficient_scope": 403,
                "model_not_found": 404, "request_timeout": 408, "payload_too_large": 413,
                "unsupported_media_type": 415, "upstream_error": 502, "no_capacity": 503,
                "upstream_timeout": 504}  # fmt: skip
    assert {code: CATALOG[code].status for code in expected} == expected


def test_store_unavailable_is_a_503_with_retry_after() -> None:
    error = StoreUnavailable()
    assert (error.status, error.code, error.headers) == (503, "service_unavailable",
                                                         {"Retry-After": "1"})  # fmt: skip


def test_framework_statuses_map_to_catalog_codes() -> None:
    assert error_for_status(404).code == "not_found"
    assert error_for_status(405).code == "method_not_allowed"
