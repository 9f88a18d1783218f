"""The embeddings routes: OpenAI's ``POST /v1/embeddings`` and our ``POST /v1/embed``.

Routed, admitted (the input's estimated tokens against the token bucket; nothing is
reserved for output) and recorded like a chat request, through ``routed_chat``; a node's
worker asks its backend (Ollama ``/api/embed``, an OpenAI-compatible ``/v1/embeddings``)
and sends the vectors back packed (``embeddings.py``), which is what a client asking for
base64 gets as is.
"""

from __future__ import annotations

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from api_router.api.body import read_json_body
from api_router.api.public import routed_chat
from api_router.api.public.embeddings_contract import (
    EmbeddingItem,
    EmbeddingList,
    EmbeddingUsage,
    EmbedResponse,
    decode_embed_request,
    decode_embedding_request,
    input_list,
)
from api_router.api.public.inference import router_timings
from api_router.api.public.inference_contract import server_timing
from api_router.api.request_context import RequestContext, context_of
from api_router.dispatch.dispatcher import Dispatched
from api_router.dispatch.protocol import EmbedPayload
from api_router.embeddings import Embeddings, unpack
from api_router.services import services_of

_encode = msgspec.json.encode


async def embeddings(request: Request) -> Response:
    """OpenAI's ``POST /v1/embeddings``."""
    context, body = await _received(request)
    decoded = decode_embedding_request(body)
    payload = EmbedPayload(input_list(decoded.input), decoded.dimensions)
    dispatched = await _routed(request, context, decoded.model, payload)
    answer = dispatched.embeddings
    base64 = decoded.encoding_format == "base64"
    listing = EmbeddingList(
        data=[
            EmbeddingItem(index, vector if base64 else unpack(vector))
            for index, vector in enumerate(answer.vectors)
        ],
        model=decoded.model,
        usage=_usage(answer),
    )
    return Response(_encode(listing), media_type="application/json")


async def embed(request: Request) -> Response:
    """Our ``POST /v1/embed``: the vectors with the node and the router's timings."""
    context, body = await _received(request)
    decoded = decode_embed_request(body)
    context.set_session(decoded.metadata.get("session_id"), request.headers.get("x-session-id"))
    payload = EmbedPayload(input_list(decoded.input), decoded.dimensions)
    dispatched = await _routed(request, context, decoded.model, payload)
    answer = dispatched.embeddings
    timings = router_timings(context, dispatched)
    reply = EmbedResponse(
        id=context.request_id,
        created=int(context.arrived_at),
        model=decoded.model,
        node_id=dispatched.node.node_id,
        embeddings=[
            vector if decoded.encoding_format == "base64" else unpack(vector)
            for vector in answer.vectors
        ],
        encoding_format=decoded.encoding_format,
        usage=_usage(answer),
        timings=timings,
    )
    return Response(
        _encode(reply),
        media_type="application/json",
        headers={"server-timing": server_timing(timings)},
    )


async def _received(request: Request) -> tuple[RequestContext, bytes]:
    context = context_of(request.scope)
    context.authenticated()
    context.usage.operation = "embeddings"
    return context, await read_json_body(request, services_of(request.scope).settings.server)


async def _routed(
    request: Request, context: RequestContext, model: str, payload: EmbedPayload
) -> Dispatched:
    return await routed_chat.complete(services_of(request.scope), context, model, payload)


def _usage(answer: Embeddings) -> EmbeddingUsage:
    prompt = answer.usage.prompt_tokens
    return EmbeddingUsage(prompt_tokens=prompt, total_tokens=prompt)
