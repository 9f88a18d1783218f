"""The one path every inference route (chat on both APIs, embeddings on both) takes from a
decoded request to a node and back: model label, route plan (over the nodes that honour
what the request asks), admission (once per request, not per attempt), then the job on
the plan's nodes with failover. Whatever applies to every inference request goes here,
once.

What the request did is left on its ``RequestContext`` (node, tokens, outcome) for the
usage and audit records; a stream leaves the rest when it ends (``event_stream``).
"""

from __future__ import annotations

import asyncio

from api_router.api.limits import Admitted, admit
from api_router.api.request_context import RequestContext
from api_router.dispatch.attempt_failure import AttemptFailed
from api_router.dispatch.dispatcher import Dispatched
from api_router.dispatch.failover import FailoverRun, Trail
from api_router.dispatch.protocol import EmbedPayload, Job, JobPayload, Payload
from api_router.dispatch.streamed_job import Outcome
from api_router.dispatch.transport import JobStream
from api_router.errors import ApiError
from api_router.limiter.token_estimate import estimate_prompt_tokens, estimate_text_tokens
from api_router.routing.engine import RoutePlan
from api_router.routing.node_health import NodeHealth
from api_router.services import Services


async def complete(
    services: Services, context: RequestContext, model: str, payload: Payload
) -> Dispatched:
    """Admit the request, run the job on the plan's nodes and return its whole answer (a
    completion, or embeddings)."""
    job, plan = _job(services, context, model, payload, stream=False)
    admitted = await _admit(services, context, model, payload)
    observe = context.telemetry.dispatched

    async def attempt(job: Job, node: NodeHealth) -> Dispatched:
        return await services.transports.dispatch(job, node, observe)

    trail = Trail()
    try:
        dispatched = await services.failover.run(job, plan, attempt, trail)
    except AttemptFailed as exc:
        # Not accepted: nothing ran, everything is given back.
        admitted.settle(None, accepted=exc.accepted)
        _failed(context, exc)
        raise
    except BaseException as exc:  # an ApiError, or cancelled (the last resort of shutdown)
        admitted.settle(None, accepted=True)
        if isinstance(exc, ApiError):
            _failed(context, exc)
        raise
    finally:
        _record_route(context, plan, trail)
    admitted.settle(dispatched.answer.usage, accepted=True)
    usage = context.usage
    usage.status = "ok"
    usage.queue_ms = _ms(dispatched.accepted_at - dispatched.submitted_at)
    usage.inference_ms = _ms(dispatched.done_at - dispatched.accepted_at)
    return dispatched


class RoutedStream:
    """A streamed request once a worker has accepted it: the job being relayed, the
    admission its end settles, and the rest of its route plan."""

    def __init__(
        self,
        streamed: JobStream,
        admitted: Admitted,
        context: RequestContext,
        plan: RoutePlan,
        trail: Trail,
        run: FailoverRun[JobStream],
    ) -> None:
        self.streamed = streamed
        self.admitted = admitted
        self._context = context
        self._plan = plan
        self._trail = trail
        self._run = run

    async def take_over(self, lost: AttemptFailed) -> JobStream:
        """The stream's attempt failed before any text reached the client (the caller
        has closed it): the next candidate takes it over, under the failover rules; else
        ``lost`` (or a later failure) is raised."""
        try:
            self.streamed = await self._run.resume(lost)
        finally:
            _record_route(self._context, self._plan, self._trail)
        return self.streamed


async def start_stream(
    services: Services, context: RequestContext, model: str, payload: JobPayload
) -> RoutedStream:
    """Admit the request and put the job on the best node; return once a worker has
    accepted it. The stream's end settles the returned ``admitted``."""
    context.usage.streamed = True
    job, plan = _job(services, context, model, payload, stream=True)
    admitted = await _admit(services, context, model, payload)
    observe = context.telemetry.dispatched
    overflowed = asyncio.Event()

    async def attempt(job: Job, node: NodeHealth) -> JobStream:
        return await services.transports.stream(job, node, observe, overflowed)

    trail = Trail()
    run = services.failover.start(job, plan, attempt, trail)
    try:
        streamed = await run.next()
    except BaseException as exc:
        admitted.settle(None, accepted=False)  # a stream starts only once accepted
        if isinstance(exc, ApiError):
            _failed(context, exc)
        raise
    finally:
        _record_route(context, plan, trail)
    return RoutedStream(streamed, admitted, context, plan, trail, run)


def outcome_of(error: ApiError) -> Outcome:
    if error.code == "shutting_down":
        return "cancelled"  # by this gateway, whose grace was over
    return "timeout" if error.code == "upstream_timeout" else "upstream_error"


def _job(
    services: Services, context: RequestContext, model: str, payload: Payload, stream: bool
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
    plan = services.router.plan(model, context.session_id, payload.features())
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
    services: Services, context: RequestContext, model: str, payload: Payload
) -> Admitted:
    if isinstance(payload, EmbedPayload):  # input tokens only: embeddings generate none
        return await admit(
            services.admission, context, model, estimate_text_tokens(payload.input), 0
        )
    options = payload.options
    prompt = estimate_prompt_tokens(payload.messages, options)
    return await admit(services.admission, context, model, prompt, options.max_tokens)


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
    if error.code in ("upstream_timeout", "upstream_error", "shutting_down"):
        context.usage.status = outcome_of(error)


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)
