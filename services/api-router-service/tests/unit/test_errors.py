"""The error catalog and the exception tree."""

from __future__ import annotations

import pytest

from api_router.errors import CATALOG, ApiError, StoreUnavailable


def test_codes_outside_the_catalog_are_refused() -> None:
    with pytest.raises(ValueError):
        ApiError("made_up", "nope")


def test_statuses_match_the_design() -> None:
    expected = {
        "invalid_request": 400,
        "invalid_api_key": 401,
        "insufficient_scope": 403,
        "model_not_found": 404,
        "request_timeout": 408,
        "payload_too_large": 413,
        "unsupported_media_type": 415,
        "upstream_error": 502,
        "no_capacity": 503,
        "upstream_timeout": 504,
    }
    assert {code: CATALOG[code].status for code in expected} == expected


def test_store_unavailable_is_a_503_with_retry_after() -> None:
    error = StoreUnavailable()
    assert (error.status, error.code, error.headers) == (
        503,
        "service_unavailable",
        {"Retry-After": "1"},
    )
