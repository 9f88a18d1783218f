"""The one path both APIs (``/v1/inference`` and ``/v1/chat/completions``) take from a
decoded chat request to a node and back: model label, route plan, admission (once per
request, not per attempt), then the job on the plan's nodes with failover. Whatever
applies to every inference request goes here, once.

What the request did is left on its ``RequestContext`` (node, tokens, outcome) for the
usage and audit records; a stream leaves the rest when it ends (``event_stream``).
"""

from __future__ import annotations

from api_router.api.limits import Admitted, admit
from api_router.api.request_context import RequestContext
from api_router.dispatch.dispatcher import AttemptFailed, Dispatched
from api_router.dispatch.failover import Trail
from api_router.dispatch.protocol import Job, JobPayload
from api_router.dispatch.streamed_job import Outcome, StreamedJob
from api_router.errors import ApiError
from api_router.routing.engine import RoutePlan
from api_router.routing.node_health import NodeHealth
from api_router.services import Services


async def complete(
    services: Services, context: RequestContext, model: str, payload: JobPayload
) -> Dispatched:
    """Admit the request, run the job on the plan's nodes and return its whole answer."""
    job, plan = _job(services, context, model, payload, stream=False)
    admitted = await _admit(services, context, model, payload)
    observe = context.telemetry.dispatched

    async def attempt(job: Job, node: NodeHealth) -> Dispatched:
        return await services.dispatcher.dispatch(job, node, observe)

    trail = Trail()
    try:
        dispatched = await services.failover.run(job, plan, attempt, trail)
    except AttemptFailed as exc:
        # Not accepted: nothing ran, everything is given back.
        admitted.settle(None, accepted=exc.accepted)
        _failed(context, exc)
        raise
    except ApiError as exc:
        admitted.settle(None, accepted=True)
        _failed(context, exc)
        raise
    finally:
        _record_route(context, plan, trail)
    admitted.settle(dispatched.completion.usage, accepted=True)
    usage = context.usage
    usage.status = "ok"
    usage.queue_ms = _ms(dispatched.accepted_at - dispatched.submitted_at)
    usage.inference_ms = _ms(dispatched.done_at - dispatched.accepted_at)
    return dispatched


async def start_stream(
    services: Services, context: RequestContext, model: str, payload: JobPayload
) -> tuple[StreamedJob, Admitted]:
    """Admit the request and put the job on the best node; return once a worker has
    accepted it. The stream's end settles the returned ``Admitted``."""
    context.usage.streamed = True
    job, plan = _job(services, context, model, payload, stream=True)
    admitted = await _admit(services, context, model, payload)
    observe = context.telemetry.dispatched

    async def attempt(job: Job, node: NodeHealth) -> StreamedJob:
        return await services.dispatcher.stream(job, node, observe)

    trail = Trail()
    try:
        streamed = await services.failover.run(job, plan, attempt, trail)
    except ApiError as exc:
        admitted.settle(None, accepted=False)  # a stream starts only once accepted
        _failed(context, exc)
        raise
    finally:
        _record_route(context, plan, trail)
    return streamed, admitted


def outcome_of(error: ApiError) -> Outcome:
    return "timeout" if error.code == "upstream_timeout" else "upstream_error"


def _job(
    services: Services, context: RequestContext, model: str, payload: JobPayload, stream: bool
) -> tuple[Job, RoutePlan]:
    principal = context.authenticated()
    if not services.usage.accepting:
        context.billable = False  # refused for want of room to keep usage: adds none either
        raise ApiError(
            "usage_unavailable",
            "usage records cannot be kept right now, retry later",
            headers={"Retry-After": "5"},
        )
    snapshot = services.health.snapshot
    context.telemetry.set_model(model, known=model in snapshot.known_models)
    context.usage.model = model
    # Routing before admission: a model no node serves is refused without a Redis round trip.
    plan = services.router.plan(model, context.session_id)
    context.telemetry.routed(plan.candidates[0].node.pool, plan.reason)
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
    return job, plan


async def _admit(
    services: Services, context: RequestContext, model: str, payload: JobPayload
) -> Admitted:
    options = payload.options
    return await admit(services.admission, context, model, payload.messages, options.max_tokens)


def _record_route(context: RequestContext, plan: RoutePlan, trail: Trail) -> None:
    """The decision for the audit record, the response headers and the metrics."""
    usage = context.usage
    usage.route_reason = plan.reason
    usage.route_candidates = [c.node.node_id for c in plan.candidates]
    usage.route_tried = trail.attempts
    if trail.chosen is not None:
        usage.node_id, usage.pool = trail.chosen.node.node_id, trail.chosen.node.pool
        context.response_headers["X-Route-Node"] = usage.node_id
    if trail.attempts:
        context.response_headers["X-Route-Attempts"] = str(len(trail.attempts))
    context.telemetry.failover(trail.retries, trail.budget_refused)


def _failed(context: RequestContext, error: ApiError) -> None:
    # Refusals before any node was involved (no capacity) are "denied" by their status.
    if error.code in ("upstream_timeout", "upstream_error"):
        context.usage.status = outcome_of(error)


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)
