"""Generates the HTTP contract schemas from the structs the gateway decodes and encodes."""

from __future__ import annotations

from typing import Any

import msgspec

from api_router.api.errors import ErrorResponse
from api_router.api.public.inference_contract import InferenceRequest, InferenceResponse
from api_router.contracts import DRAFT

HTTP_CONTRACTS: dict[str, type[msgspec.Struct]] = {
    "inference.request": InferenceRequest,
    "inference.response": InferenceResponse,
    "error": ErrorResponse,
}


def http_contract(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = msgspec.json.schema(HTTP_CONTRACTS[name])
    return {"$schema": DRAFT, "title": name, **schema}
