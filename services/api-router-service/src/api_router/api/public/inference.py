"""``POST /v1/inference``: parse, route, admit, dispatch, answer with router-computed timings."""

from __future__ import annotations

import time
from collections.abc import Sequence

from starlette.requests import Request
from starlette.responses import Response

from api_router.api.body import read_json_body
from api_router.api.errors import ApiError
from api_router.api.limits import admitted
from api_router.api.public.inference_contract import (
    InferenceRequest,
    InferenceResponse,
    Timings,
    TokenUsage,
    decode_request,
    encode_response,
)
from api_router.api.request_context import RequestContext, context_of
from api_router.dispatch.dispatcher import Dispatched, DispatchObserver
from api_router.dispatch.protocol import Job, JobPayload
from api_router.routing.node_health import NodeHealth
from api_router.services import Services, services_of


async def inference(request: Request) -> Response:
    services = services_of(request.scope)
    context = context_of(request.scope)
    principal = context.authenticated()
    if not services.usage.accepting:
        raise ApiError(
            "usage_unavailable", "usage records cannot be kept right now, retry later",
            headers={"Retry-After": "5"},
        )  # fmt: skip
    body = decode_request(await read_json_body(request, services.settings.server))
    if body.stream:
        raise ApiError(
            "streaming_unsupported", 'streaming is not available yet; send "stream": false'
        )
    snapshot = services.health.snapshot
    context.telemetry.set_model(body.model, known=body.model in snapshot.known_models)
    context.usage.model = body.model
    # Routing before admission: a model no node serves is refused without a Redis round trip.
    candidates = snapshot.candidates(body.model)
    max_tokens = body.options.max_tokens
    async with admitted(request.scope, body.model, body.messages, max_tokens) as usage:
        dispatched = await _dispatch(services, context, principal.tenant, body, candidates)
        usage.record(dispatched.completion.usage)
    timings = _timings(context, dispatched)
    context.usage.queue_ms, context.usage.inference_ms = timings.queue_ms, timings.inference_ms
    return Response(
        encode_response(_response(context, body.model, dispatched, timings)),
        media_type="application/json",
        headers={"server-timing": _server_timing(timings)},
    )


async def _dispatch(
    services: Services,
    context: RequestContext,
    tenant: str,
    body: InferenceRequest,
    candidates: Sequence[NodeHealth],
) -> Dispatched:
    timeout_s = services.settings.dispatch.request_timeout_s
    job = Job(
        id=context.request_id,
        attempt=1,
        reply_to=services.replies.stream,
        deadline_ms=int((context.arrived_at + timeout_s) * 1000),
        model=body.model,
        stream=False,
        tenant=tenant,
        traceparent=context.telemetry.traceparent,
        payload=JobPayload(body.messages, body.options),
    )
    return await services.dispatcher.dispatch(job, candidates, _observer(context, candidates))


def _observer(context: RequestContext, candidates: Sequence[NodeHealth]) -> DispatchObserver:
    """Note the node that took the job, for telemetry and the usage record."""

    def observe(node_id: str, outcome: str, seconds: float) -> None:
        context.telemetry.dispatched(node_id, outcome, seconds)
        usage = context.usage
        usage.node_id = node_id
        usage.pool = next((n.pool for n in candidates if n.node_id == node_id), "")
        usage.attempts += 1

    return observe


def _timings(context: RequestContext, dispatched: Dispatched) -> Timings:
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


def _server_timing(timings: Timings) -> str:
    return (
        f"gateway;dur={timings.gateway_ms}, queue;dur={timings.queue_ms}, "
        f"inference;dur={timings.inference_ms}, total;dur={timings.total_ms}"
    )


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)
