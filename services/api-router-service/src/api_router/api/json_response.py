"""A JSON answer from any msgspec-encodable value (structs, lists, dicts)."""

from __future__ import annotations

import msgspec
from starlette.responses import Response

_encode = msgspec.json.Encoder().encode


def json_response(value: object, status: int = 200) -> Response:
    return Response(_encode(value), status_code=status, media_type="application/json")
