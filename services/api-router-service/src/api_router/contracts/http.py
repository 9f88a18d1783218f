"""Generates the contract schemas of the structs the gateway decodes and encodes: HTTP
bodies, and the usage records it sends to Kafka."""

from __future__ import annotations

from typing import Any

import msgspec

from api_router.api.admin.key_contract import (
    CreatedKey,
    CreateKeyRequest,
    KeyInfo,
    KeyList,
    NewSigningSecret,
)
from api_router.api.error_responses import ErrorResponse
from api_router.api.public.inference_contract import (
    InferenceRequest,
    InferenceResponse,
    StreamDelta,
    StreamDone,
)
from api_router.api.public.openai_contract import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ModelList,
    OpenAIError,
)
from api_router.contracts import DRAFT
from api_router.usage.record import AuditRecord, UsageRecord

HTTP_CONTRACTS: dict[str, type[msgspec.Struct]] = {
    "inference.request": InferenceRequest,
    "inference.response": InferenceResponse,
    "inference.chunk": StreamDelta,
    "inference.done": StreamDone,
    "chat.completion.request": ChatCompletionRequest,
    "chat.completion": ChatCompletion,
    "chat.completion.chunk": ChatCompletionChunk,
    "model.list": ModelList,
    "error": ErrorResponse,
    "openai.error": OpenAIError,
    "usage.record": UsageRecord,
    "audit.record": AuditRecord,
    "admin.key.create.request": CreateKeyRequest,
    "admin.key.created": CreatedKey,
    "admin.key": KeyInfo,
    "admin.key.list": KeyList,
    "admin.key.signing_secret": NewSigningSecret,
}


def http_contract(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = msgspec.json.schema(HTTP_CONTRACTS[name])
    return {"$schema": DRAFT, "title": name, **schema}
