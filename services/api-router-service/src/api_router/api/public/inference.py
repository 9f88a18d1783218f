"""``POST /v1/inference``: parse, route, dispatch, answer with router-computed timings,
whole or (``"stream": true``) as server-sent events."""

from __future__ import annotations

import time

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from api_router.api.body import read_json_body
from api_router.api.error_responses import error_body
from api_router.api.prefer import preferences
from api_router.api.public import inference_jobs, routed_chat
from api_router.api.public.event_stream import EventStreamResponse
from api_router.api.public.inference_contract import (
    InferenceResponse,
    StreamDelta,
    StreamDone,
    StreamTimings,
    Timings,
    TokenUsage,
    decode_request,
    encode_response,
    server_timing,
)
from api_router.api.request_context import RequestContext, context_of
from api_router.chat import Completion
from api_router.chat_tools import ToolCallDelta
from api_router.dispatch.dispatcher import Dispatched
from api_router.dispatch.protocol import JobPayload
from api_router.errors import ApiError
from api_router.services import services_of

_encode = msgspec.json.encode


async def inference(request: Request) -> Response | EventStreamResponse:
    services = services_of(request.scope)
    context = context_of(request.scope)
    context.authenticated()
    raw = await read_json_body(request, services.settings.server)
    body = decode_request(raw)
    payload = JobPayload(body.messages, body.options)
    context.set_session(body.metadata.get("session_id"), request.headers.get("x-session-id"))
    if not body.stream and "prefer" in request.headers:
        if preferences(request.headers).respond_async:  # a stream is never asynchronous
            return await inference_jobs.submit(services, context, request, raw, body)
    if body.stream:
        routed = await routed_chat.start_stream(services, context, body.model, payload)
        spelling = InferenceEvents(context, body.model)
        return EventStreamResponse(routed, spelling, context, services.settings.stream)
    dispatched = await routed_chat.complete(services, context, body.model, payload)
    timings = router_timings(context, dispatched)
    return Response(
        encode_response(_response(context, body.model, dispatched, timings)),
        media_type="application/json",
        headers={"server-timing": server_timing(timings)},
    )


class InferenceEvents:
    """Our stream spelling: ``event: chunk`` / ``done`` / ``error`` with JSON data."""

    def __init__(self, context: RequestContext, model: str) -> None:
        self._context = context
        self._model = model

    def delta(self, text: str) -> bytes:
        return b"event: chunk\ndata: " + _encode(StreamDelta(text)) + b"\n\n"

    def tool_call(self, piece: ToolCallDelta) -> bytes:
        return b"event: chunk\ndata: " + _encode(StreamDelta("", [piece])) + b"\n\n"

    def done(self, completion: Completion, timings: StreamTimings, node_id: str) -> bytes:
        usage = completion.usage
        done = StreamDone(
            id=self._context.request_id,
            created=int(self._context.arrived_at),
            model=self._model,
            node_id=node_id,
            finish_reason=completion.finish_reason,
            usage=TokenUsage(usage.prompt_tokens, usage.completion_tokens, usage.total_tokens),
            timings=timings,
            metadata=completion.metadata,
        )
        return b"event: done\ndata: " + _encode(done) + b"\n\n"

    def error(self, error: ApiError) -> bytes:
        return b"event: error\ndata: " + error_body(error, self._context.request_id) + b"\n\n"


def router_timings(context: RequestContext, dispatched: Dispatched) -> Timings:
    """The router's split of a whole answer's time (total = gateway + queue + inference)."""
    total = time.perf_counter() - context.telemetry.started
    queue = dispatched.accepted_at - dispatched.submitted_at
    inference_time = dispatched.done_at - dispatched.accepted_at
    return Timings(
        total_ms=_ms(total),
        gateway_ms=_ms(total - queue - inference_time),
        queue_ms=_ms(queue),
        inference_ms=_ms(inference_time),
    )


def _response(
    context: RequestContext, model: str, dispatched: Dispatched, timings: Timings
) -> InferenceResponse:
    completion = dispatched.completion
    usage = completion.usage
    return InferenceResponse(
        id=context.request_id,
        created=int(context.arrived_at),
        model=model,
        node_id=dispatched.node.node_id,
        message=completion.message,
        finish_reason=completion.finish_reason,
        usage=TokenUsage(usage.prompt_tokens, usage.completion_tokens, usage.total_tokens),
        timings=timings,
        metadata=completion.metadata,
    )


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)
