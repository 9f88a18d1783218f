"""The catalog rendered as the one JSON error shape."""

from __future__ import annotations

import json

from api_router.api.error_responses import error_body, error_for_status
from api_router.errors import ApiError


def test_the_body_has_the_one_shape() -> None:
    body = json.loads(error_body(ApiError("no_capacity", "busy"), "req_1"))
    assert body == {
        "error": {
            "type": "overloaded_error",
            "code": "no_capacity",
            "message": "busy",
            "request_id": "req_1",
        }
    }


def test_framework_statuses_map_to_catalog_codes() -> None:
    assert error_for_status(404).code == "not_found"
    assert error_for_status(405).code == "method_not_allowed"
