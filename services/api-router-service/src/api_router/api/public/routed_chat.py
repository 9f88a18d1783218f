"""The one path both APIs (``/v1/inference`` and ``/v1/chat/completions``) take from a
decoded chat request to a node and back: model label, candidates, job, dispatch. Whatever
later applies to every inference request (limits, budgets, retries) goes here, once.

What the request did is left on its ``RequestContext`` (node, tokens, outcome) for the
usage and audit records; a stream leaves the rest when it ends (``event_stream``).
"""

from __future__ import annotations

from collections.abc import Sequence

from api_router.api.errors import ApiError
from api_router.api.limits import Admitted, admit
from api_router.api.request_context import RequestContext
from api_router.dispatch.dispatcher import Dispatched, JobNotAccepted
from api_router.dispatch.protocol import Job, JobPayload
from api_router.dispatch.streamed_job import DispatchObserver, Outcome, StreamedJob
from api_router.routing.node_health import NodeHealth
from api_router.services import Services


async def complete(
    services: Services, context: RequestContext, model: str, payload: JobPayload
) -> Dispatched:
    """Admit the request, run the job on the best node and return its whole answer."""
    job, candidates = _job(services, context, model, payload, stream=False)
    admitted = await _admit(services, context, model, payload)
    try:
        dispatched = await services.dispatcher.dispatch(
            job, candidates, _observer(context, candidates)
        )
    except JobNotAccepted as exc:
        admitted.settle(None, accepted=False)  # nothing ran: everything is given back
        _failed(context, exc)
        raise
    except ApiError as exc:
        admitted.settle(None, accepted=True)
        _failed(context, exc)
        raise
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
    job, candidates = _job(services, context, model, payload, stream=True)
    admitted = await _admit(services, context, model, payload)
    try:
        streamed = await services.dispatcher.stream(job, candidates, _observer(context, candidates))
    except ApiError as exc:
        admitted.settle(None, accepted=False)  # a stream starts only once accepted
        _failed(context, exc)
        raise
    usage = context.usage
    usage.node_id, usage.pool, usage.attempts = streamed.node.node_id, streamed.node.pool, 1
    return streamed, admitted


def outcome_of(error: ApiError) -> Outcome:
    return "timeout" if error.code == "upstream_timeout" else "upstream_error"


def _job(
    services: Services, context: RequestContext, model: str, payload: JobPayload, stream: bool
) -> tuple[Job, tuple[NodeHealth, ...]]:
    principal = context.authenticated()
    if not services.usage.accepting:
        raise ApiError(
            "usage_unavailable", "usage records cannot be kept right now, retry later",
            headers={"Retry-After": "5"},
        )  # fmt: skip
    snapshot = services.health.snapshot
    context.telemetry.set_model(model, known=model in snapshot.known_models)
    context.usage.model = model
    # Routing before admission: a model no node serves is refused without a Redis round trip.
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


async def _admit(
    services: Services, context: RequestContext, model: str, payload: JobPayload
) -> Admitted:
    options = payload.options
    return await admit(services.admission, context, model, payload.messages, options.max_tokens)


def _observer(context: RequestContext, candidates: Sequence[NodeHealth]) -> DispatchObserver:
    """Note the node that took the job, for telemetry and the usage record."""

    def observe(node_id: str, outcome: str, seconds: float) -> None:
        context.telemetry.dispatched(node_id, outcome, seconds)
        usage = context.usage
        usage.node_id = node_id
        usage.pool = next((n.pool for n in candidates if n.node_id == node_id), "")
        usage.attempts = 1  # one attempt per request until retries exist

    return observe


def _failed(context: RequestContext, error: ApiError) -> None:
    # Refusals before any node was involved (no capacity) are "denied" by their status.
    if error.code in ("upstream_timeout", "upstream_error"):
        context.usage.status = outcome_of(error)


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)
