"""The OpenAPI paths of the OpenAI-compatible routes (errors in OpenAI's shape)."""

from __future__ import annotations

from api_router.api.openapi_operation import Refs, Spec, answer, errors, json_content, operation
from api_router.api.public.idempotency_openapi import (
    IDEMPOTENCY_ERRORS,
    IDEMPOTENCY_KEY,
    PREFER_WAIT,
    REPLAYED,
)
from api_router.api.public.inference_openapi import (
    INFERENCE_ERRORS,
    event_stream,
    sse_event,
)


def openai_paths(ref: Refs) -> Spec:
    error = ref["openai.error"]
    completion = {
        "description": "The completion; with `stream: true`, `data:` "
        "frames holding chat.completion.chunk, ending with `data: [DONE]`",
        "headers": REPLAYED,
        "content": {
            **json_content(ref["chat.completion"]),
            **event_stream(
                {
                    "oneOf": [
                        sse_event(ref["chat.completion.chunk"]),
                        sse_event(error),  # a failure after the 200, in OpenAI's shape
                        {
                            "type": "object",
                            "properties": {"data": {"const": "[DONE]"}},
                            "required": ["data"],
                        },
                    ]
                }
            ),
        },
    }
    return {
        "/v1/chat/completions": {
            "post": operation(
                "createChatCompletion",
                "OpenAI-compatible chat completion (whole or streamed)",
                {"200": completion, **errors(error, (*INFERENCE_ERRORS, *IDEMPOTENCY_ERRORS))},
                body=ref["chat.completion.request"],
                parameters=[IDEMPOTENCY_KEY, PREFER_WAIT],
            )
        },
        "/v1/embeddings": {
            "post": operation(
                "createEmbedding",
                "OpenAI-compatible embeddings of one text or a list of texts",
                {
                    "200": answer(
                        "One embedding per input, floats or base64 (encoding_format)",
                        ref["embedding.list"],
                    ),
                    **errors(error, INFERENCE_ERRORS),
                },
                body=ref["embedding.request"],
            )
        },
        "/v1/models": {
            "get": operation(
                "listModels",
                "OpenAI-compatible list of the models healthy nodes serve",
                {
                    "200": answer("The models", ref["model.list"]),
                    **errors(error, ("401", "403", "503")),
                },
            )
        },
    }
