"""The one path both APIs (``/v1/inference`` and ``/v1/chat/completions``) take from a
decoded chat request to a node and back: model label, candidates, job, dispatch. Whatever
later applies to every inference request (limits, budgets, retries) goes here, once.

What the request did is left on its ``RequestContext`` (node, tokens, outcome) for the
usage and audit records; a stream leaves the rest when it ends (``event_stream``).
"""

from __future__ import annotations

from api_router.api.errors import ApiError
from api_router.api.request_context import RequestContext
from api_router.dispatch.dispatcher import Dispatched
from api_router.dispatch.protocol import Job, JobPayload
from api_router.dispatch.streamed_job import Outcome, StreamedJob
from api_router.routing.node_health import NodeHealth
from api_router.services import Services


async def complete(
    services: Services, context: RequestContext, model: str, payload: JobPayload
) -> Dispatched:
    """Run the job on the best node and return its whole answer."""
    job, candidates = _job(services, context, model, payload, stream=False)
    try:
        dispatched = await services.dispatcher.dispatch(
            job, candidates, context.telemetry.dispatched
        )
    except ApiError as exc:
        _failed(context, exc)
        raise
    usage = dispatched.completion.usage
    context.node_id = dispatched.node.node_id
    context.prompt_tokens, context.completion_tokens = usage.prompt_tokens, usage.completion_tokens
    context.outcome = "ok"
    return dispatched


async def start_stream(
    services: Services, context: RequestContext, model: str, payload: JobPayload
) -> StreamedJob:
    """Put the job on the best node and return once a worker has accepted it."""
    context.streamed = True
    job, candidates = _job(services, context, model, payload, stream=True)
    try:
        streamed = await services.dispatcher.stream(job, candidates, context.telemetry.dispatched)
    except ApiError as exc:
        _failed(context, exc)
        raise
    context.node_id = streamed.node.node_id
    return streamed


def outcome_of(error: ApiError) -> Outcome:
    return "timeout" if error.code == "upstream_timeout" else "upstream_error"


def _job(
    services: Services, context: RequestContext, model: str, payload: JobPayload, stream: bool
) -> tuple[Job, tuple[NodeHealth, ...]]:
    principal = context.authenticated()
    snapshot = services.health.snapshot
    context.telemetry.set_model(model, known=model in snapshot.known_models)
    candidates = snapshot.candidates(model)
    timeout_s = services.settings.dispatch.request_timeout_s
    job = Job(
        id=context.request_id,
        attempt=1,
        reply_to=services.replies.stream,
        deadline_ms=int((context.arrived_at + timeout_s) * 1000),
        model=model,
        stream=stream,
        tenant=principal.tenant,
        traceparent=context.telemetry.traceparent,
        payload=payload,
    )
    return job, candidates


def _failed(context: RequestContext, error: ApiError) -> None:
    # Refusals before any node was involved (no capacity) leave no outcome: no usage.
    if error.code in ("upstream_timeout", "upstream_error"):
        context.outcome = outcome_of(error)
