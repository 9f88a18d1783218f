"""The one registry of contracts: every struct the gateway decodes or encodes at its edges
(HTTP bodies, and the usage records it sends to Kafka), by contract name.

Each is published as ``contracts/<name>.schema.json`` and is a component of the OpenAPI
document, whose paths look them up here by name. ``python -m
api_router.api.contract_registry`` rewrites the files; a contract test fails when they
differ from the structs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Final

import msgspec

from api_router.api.admin.key_contract import (
    CreatedKey,
    CreateKeyRequest,
    KeyInfo,
    KeyList,
    NewSigningSecret,
)
from api_router.api.admin.routing_contract import DrainRequest, PinRequest, WeightsRequest
from api_router.api.error_responses import ErrorResponse
from api_router.api.public.audit import AuditList
from api_router.api.public.embeddings_contract import (
    EmbeddingList,
    EmbeddingRequest,
    EmbedRequest,
    EmbedResponse,
)
from api_router.api.public.inference_contract import (
    InferenceJob,
    InferenceRequest,
    InferenceResponse,
    StreamDelta,
    StreamDone,
)
from api_router.api.public.openai_answers import (
    ChatCompletion,
    ChatCompletionChunk,
    ModelList,
    OpenAIError,
)
from api_router.api.public.openai_contract import STREAM_OPTIONS_NEED_STREAM, ChatCompletionRequest
from api_router.api.public.status import StatusReport
from api_router.api.public.usage_contract import TenantList, UsageReport
from api_router.contracts import DRAFT, FOLDER
from api_router.dispatch.protocol_schema import event_schema, job_schema
from api_router.routing.override_set import Override
from api_router.routing.routing_view import RoutingView
from api_router.usage.record import AuditRecord, UsageRecord

CONTRACTS: Final[Mapping[str, Any]] = {
    "inference.request": InferenceRequest,
    "inference.response": InferenceResponse,
    "inference.chunk": StreamDelta,
    "inference.done": StreamDone,
    "inference.job": InferenceJob,
    "chat.completion.request": Annotated[
        ChatCompletionRequest, msgspec.Meta(extra_json_schema=STREAM_OPTIONS_NEED_STREAM)
    ],
    "chat.completion": ChatCompletion,
    "chat.completion.chunk": ChatCompletionChunk,
    "model.list": ModelList,
    "embedding.request": EmbeddingRequest,
    "embedding.list": EmbeddingList,
    "embed.request": EmbedRequest,
    "embed.response": EmbedResponse,
    "error": ErrorResponse,
    "openai.error": OpenAIError,
    "status.report": StatusReport,
    "usage.report": UsageReport,
    # Not an HTTP body: the Kafka messages of the usage topic.
    "usage.record": UsageRecord,
    "audit.record": AuditRecord,
    "audit.list": AuditList,
    "admin.key.create.request": CreateKeyRequest,
    "admin.key.created": CreatedKey,
    "admin.key": KeyInfo,
    "admin.key.list": KeyList,
    "admin.key.signing_secret": NewSigningSecret,
    "admin.routing": RoutingView,
    "admin.routing.weights.request": WeightsRequest,
    "admin.routing.pin.request": PinRequest,
    "admin.routing.drain.request": DrainRequest,
    "admin.routing.override": Override,
    "admin.tenant.list": TenantList,
}


# Not HTTP bodies either: the Redis stream entries between gateways and workers, whose
# fields are strings holding JSON (dispatch/protocol_schema.py).
STREAM_CONTRACTS: Final[Mapping[str, Callable[[], dict[str, Any]]]] = {
    "stream.job": job_schema,
    "stream.event": event_schema,
}


def contract_schema(name: str) -> dict[str, Any]:
    """The JSON Schema of contract ``name``, as published."""
    if name in STREAM_CONTRACTS:
        schema = STREAM_CONTRACTS[name]()
    else:
        schema = msgspec.json.schema(CONTRACTS[name])
    return {"$schema": DRAFT, "title": name, **schema}


def main() -> None:
    """Rewrite the published contract files from the structs."""
    for name in (*CONTRACTS, *STREAM_CONTRACTS):
        text = json.dumps(contract_schema(name), indent=2, sort_keys=True) + "\n"
        (FOLDER / f"{name}.schema.json").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
