"""One run of an asynchronous job: the request a client submitted with ``Prefer:
respond-async``, taken through the same path as a synchronous one (model, route plan,
admission, dispatch with failover, usage and audit), answered into a ``StoredAnswer``.

The job runs on the node as a stream, though its answer is whole: the gateway then knows
the tokens generated so far, so a job cancelled midway is charged what was generated
(like a stream cut short), and a lost attempt is taken over before any text as a stream
is. The final ``done`` event carries the whole message, which becomes the same body a
synchronous call returns.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Final

from api_router.api.error_responses import error_body
from api_router.api.public import routed_chat
from api_router.api.public.inference_contract import (
    InferenceResponse,
    Timings,
    TokenUsage,
    decode_request,
    encode_response,
    server_timing,
)
from api_router.api.request_context import RequestContext, write_records
from api_router.auth.authenticator import Principal
from api_router.chat import Completion, Usage
from api_router.dispatch.attempt_failure import AttemptFailed
from api_router.dispatch.protocol import JobPayload
from api_router.dispatch.streamed_job import Outcome
from api_router.dispatch.transport import JobStream
from api_router.errors import ApiError, ShuttingDown
from api_router.idempotency.stored_answer import StoredAnswer
from api_router.jobs.job_store import JobRequest
from api_router.services import Services

# The route jobs are counted under in the request metrics and the access log.
JOB_ROUTE: Final = "/v1/inference (async)"
# `JobStream.next` returns empty-handed after this long without an event (a stream's
# heartbeat); a job has nobody to send one to, so it just waits again.
_WAIT_S: Final = 5.0


class HandedOver(Exception):
    """This replica is shutting down: the job is left for another replica to take over
    (its lease runs out); nothing is charged or recorded here."""


async def run_job(
    services: Services,
    job: JobRequest,
    running: Callable[[], Awaitable[None]],
    stopping: Callable[[], bool],
) -> StoredAnswer:
    """Run ``job`` to its answer (an error answer too); ``running`` is awaited once a
    worker has accepted it. Raises ``HandedOver`` when the gateway shuts down first (its
    dispatcher stops, or the run is cancelled while ``stopping()``); a run cancelled
    otherwise was cancelled by its tenant, and is charged what was generated."""
    telemetry = services.telemetry.start_request("POST", "/v1/inference", None)
    context = RequestContext(job.request_id, telemetry)
    context.billable = True
    context.principal = Principal(job.key_id, job.tenant, frozenset({"inference"}), job.auth_method)
    facts = context.usage
    facts.tenant, facts.key_id, facts.auth_method = job.tenant, job.key_id, job.auth_method
    telemetry.set_principal(job.tenant, job.key_id)
    status = 500
    try:
        answer = await _answer(services, context, job, running, stopping)
        status = answer.status
        return answer
    except HandedOver:
        context.billable = False
        raise
    except asyncio.CancelledError:
        context.billable = not stopping()
        if context.billable:  # cancelled by its tenant
            status = 499
            facts.status = "cancelled"
        raise
    finally:
        telemetry.finish(status, JOB_ROUTE, context.error_code, facts)
        if context.billable:
            write_records(services, context, status)


async def _answer(
    services: Services,
    context: RequestContext,
    job: JobRequest,
    running: Callable[[], Awaitable[None]],
    stopping: Callable[[], bool],
) -> StoredAnswer:
    try:
        body = decode_request(job.body)
        context.set_session(body.metadata.get("session_id"), job.session or None)
        payload = JobPayload(body.messages, body.options)
        routed = await routed_chat.start_stream(services, context, body.model, payload)
    except ShuttingDown:
        raise HandedOver from None
    except ApiError as exc:
        return _error(context, exc)
    context.usage.streamed = False  # relayed whole, to whoever asks for it
    try:
        completion = await _collect(context, routed, running, stopping)
    except ShuttingDown:
        raise HandedOver from None
    except ApiError as exc:
        return _error(context, exc)
    timings = _timings(context, routed.streamed)
    usage = completion.usage
    response = InferenceResponse(
        id=context.request_id,
        created=job.created,  # submitted then (a run taken over started later)
        model=body.model,
        node_id=routed.streamed.node.node_id,
        message=completion.message,
        finish_reason=completion.finish_reason,
        usage=TokenUsage(usage.prompt_tokens, usage.completion_tokens, usage.total_tokens),
        timings=timings,
        metadata=completion.metadata,
    )
    headers = [("content-type", "application/json"), ("server-timing", server_timing(timings))]
    return StoredAnswer(context.request_id, body.model, 200, headers, encode_response(response))


async def _collect(
    context: RequestContext,
    routed: routed_chat.RoutedStream,
    running: Callable[[], Awaitable[None]],
    stopping: Callable[[], bool],
) -> Completion:
    """Wait for the job's final completion, handing a lost attempt to the next node while
    no text has come; settle what it cost however it ends (cancelled: what was generated;
    handed over: nothing, the replica that takes it over charges it)."""
    outcome: Outcome = "cancelled"
    completion: Completion | None = None
    handed_over = False
    observe = context.telemetry.dispatched
    try:
        await running()
        while completion is None:
            try:
                pieces = await routed.streamed.next(_WAIT_S)
            except AttemptFailed as lost:
                routed.streamed.close(routed_chat.outcome_of(lost), observe)
                await routed.take_over(lost)
                continue
            if pieces and isinstance(pieces[-1], Completion):
                completion = pieces[-1]
        outcome = "ok"
        return completion
    except ShuttingDown:
        handed_over = True
        raise
    except asyncio.CancelledError:
        handed_over = stopping()
        raise
    except ApiError as exc:
        outcome = routed_chat.outcome_of(exc)
        raise
    finally:
        _settle(context, routed, outcome, completion, handed_over)


def _settle(
    context: RequestContext,
    routed: routed_chat.RoutedStream,
    outcome: Outcome,
    completion: Completion | None,
    handed_over: bool,
) -> None:
    streamed = routed.streamed
    streamed.close(outcome, context.telemetry.dispatched)
    facts = context.usage
    facts.status = outcome
    done_at = streamed.done_at or time.perf_counter()
    facts.queue_ms = _ms(streamed.accepted_at - streamed.submitted_at)
    facts.inference_ms = _ms(done_at - streamed.accepted_at)
    if completion is not None:
        routed.admitted.settle(completion.usage, accepted=True)
    elif handed_over:
        routed.admitted.settle(None, accepted=False)
    else:
        routed.admitted.settle(Usage(0, streamed.tokens), accepted=True)


def _error(context: RequestContext, error: ApiError) -> StoredAnswer:
    context.error_code = error.code
    headers = [("content-type", "application/json")]
    body = error_body(error, context.request_id)
    return StoredAnswer(context.request_id, context.usage.model, error.status, headers, body)


def _timings(context: RequestContext, streamed: JobStream) -> Timings:
    done_at = streamed.done_at or time.perf_counter()
    total = time.perf_counter() - context.telemetry.started
    queue = streamed.accepted_at - streamed.submitted_at
    inference = done_at - streamed.accepted_at
    return Timings(
        total_ms=_ms(total),
        gateway_ms=_ms(total - queue - inference),
        queue_ms=_ms(queue),
        inference_ms=_ms(inference),
    )


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)
