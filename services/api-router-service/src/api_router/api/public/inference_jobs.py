"""Asynchronous inference jobs: ``POST /v1/inference`` with ``Prefer: respond-async``
(RFC 7240) answers 202 at once; ``GET /v1/inference/{request_id}`` polls the job (202
while it runs, then the answer a synchronous call would have had) and ``DELETE`` cancels
it. Jobs are kept in Redis (``jobs/job_store.py``) and run by ``job_runner.py``; any
replica answers for any job, and only its tenant sees it (another tenant gets 404)."""

from __future__ import annotations

import re

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from api_router.api.public.inference_contract import InferenceJob, InferenceRequest
from api_router.api.public.job_runner import job_runner_of
from api_router.api.request_context import REQUEST_ID_PATTERN, RequestContext, context_of
from api_router.dispatch.protocol import JobPayload
from api_router.errors import ApiError
from api_router.jobs.job_store import JobRequest
from api_router.services import Services, services_of

_encode = msgspec.json.encode
# How soon a client polling a job that still runs should ask again.
_POLL_AFTER_S = "1"


async def submit(
    services: Services,
    context: RequestContext,
    request: Request,
    raw: bytes,
    body: InferenceRequest,
) -> Response:
    """Accept the job (once a node could take its model: else the same 404 or 503 as a
    synchronous call, at once) and start it on this replica; its run leaves the usage
    and audit records under the same request id."""
    principal = context.authenticated()
    features = JobPayload(body.messages, body.options).features()
    services.router.plan(body.model, context.session_id, features)
    job = JobRequest(
        request_id=context.request_id,
        tenant=principal.tenant,
        key_id=principal.key_id,
        auth_method=principal.auth_method,
        body=raw,
        session=request.headers.get("x-session-id", ""),
        created=int(context.arrived_at),
    )
    await job_runner_of(request.scope).submit(job)
    context.billable = False  # the job's own run is what is recorded and billed
    return _pending(job.request_id, job.created, "queued", {"Preference-Applied": "respond-async"})


async def inference_job(request: Request) -> Response:
    """``GET`` (poll) or ``DELETE`` (cancel) the caller's job."""
    services = services_of(request.scope)
    tenant = context_of(request.scope).authenticated().tenant
    request_id = request.path_params["request_id"]
    if not re.fullmatch(REQUEST_ID_PATTERN, request_id):
        raise _no_such_job()
    if request.method == "DELETE":
        return await _cancel(services, tenant, request_id)
    job = await services.jobs.get(request_id)
    if job is None or job.tenant != tenant:
        raise _no_such_job()
    if job.state == "cancelled":
        raise ApiError("job_cancelled", f"the job {request_id} was cancelled")
    if job.answer is None:
        return _pending(request_id, job.created, "running" if job.state == "running" else "queued")
    answer = job.answer
    headers = dict(answer.headers)
    return Response(answer.body, status_code=answer.status, headers=headers)


async def _cancel(services: Services, tenant: str, request_id: str) -> Response:
    outcome = await services.jobs.cancel(request_id, tenant)
    if outcome == "missing":
        raise _no_such_job()
    if outcome == "done":
        raise ApiError("conflict", f"the job {request_id} has already finished")
    job = await services.jobs.get(request_id)
    created = job.created if job is not None else 0
    return _pending(request_id, created, "cancelled", status=200)


def _pending(
    request_id: str,
    created: int,
    state: str,
    headers: dict[str, str] | None = None,
    status: int = 202,
) -> Response:
    body = InferenceJob(id=request_id, created=created, status=state)  # type: ignore[arg-type]
    return Response(
        _encode(body),
        status_code=status,
        media_type="application/json",
        headers={
            "Location": f"/v1/inference/{request_id}",
            **({"Retry-After": _POLL_AFTER_S} if status == 202 else {}),
            **(headers or {}),
        },
    )


def _no_such_job() -> ApiError:
    return ApiError("not_found", "no such job (or its result is past its retention)")
