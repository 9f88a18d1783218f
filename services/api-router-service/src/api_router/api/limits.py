"""Limits around one request: admit before the job is dispatched, settle once it has ended.

Every inference route (``/v1/inference``, the chat completions and streaming routes) runs
its dispatch inside :func:`admitted`::

    async with admitted(request.scope, body.model, body.messages, max_tokens) as usage:
        dispatched = await services.dispatcher.dispatch(...)
        usage.record(dispatched.completion.usage)

Settlement is scheduled when the block ends, however it ends (an error, a cancelled or
disconnected client), and runs off the response path.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from starlette.types import Scope

from api_router.api.errors import StoreUnavailable
from api_router.api.request_context import RequestContext, context_of
from api_router.chat import ChatMessage, Usage
from api_router.dispatch.dispatcher import JobNotAccepted
from api_router.limiter.admission import AdmissionRequest, Grant
from api_router.limiter.decision import LimitDecision
from api_router.limiter.token_estimate import estimate_prompt_tokens
from api_router.services import services_of


class UsageReport:
    """Filled in by the handler once the backend reported its token counts."""

    __slots__ = ("usage",)

    def __init__(self) -> None:
        self.usage: Usage | None = None

    def record(self, usage: Usage) -> None:
        self.usage = usage


@asynccontextmanager
async def admitted(
    scope: Scope, model: str, messages: Sequence[ChatMessage], max_tokens: int | None
) -> AsyncIterator[UsageReport]:
    """Admit the request (raising its 402/429/503, or waiting in the plan's queue), run the
    block, then settle: actual usage replaces the reservation and the lease is released."""
    admission = services_of(scope).admission
    context = context_of(scope)
    principal = context.authenticated()
    request = AdmissionRequest(
        request_id=context.request_id,
        tenant=principal.tenant,
        key_id=principal.key_id,
        model=model,
        prompt_tokens=estimate_prompt_tokens(messages),
        max_tokens=max_tokens,
    )
    grant = await admission.acquire(request, lambda decision: _record(context, decision))
    context.plan = grant.plan
    context.response_headers.update(grant.headers)
    report = UsageReport()
    try:
        yield report
    except (JobNotAccepted, StoreUnavailable):
        # Nothing ran on a node: the request, its tokens and its budget are all given back.
        admission.settle(grant, None, accepted=False)
        raise
    except BaseException:
        admission.settle(grant, report.usage, accepted=True)
        _note_usage(context, grant, report.usage)
        raise
    admission.settle(grant, report.usage, accepted=True)
    _note_usage(context, grant, report.usage)


def _note_usage(context: RequestContext, grant: Grant, usage: Usage | None) -> None:
    """Actual tokens and their cost (at the model's prices), for the usage record."""
    if usage is None:
        return
    facts = context.usage
    facts.prompt_tokens, facts.completion_tokens = usage.prompt_tokens, usage.completion_tokens
    if grant.limits is not None:
        cost = grant.limits.prices.cost(usage.prompt_tokens, usage.completion_tokens)
        facts.cost = round(cost, 9)


def _record(context: RequestContext, decision: LimitDecision) -> None:
    context.plan = decision.plan or context.plan  # also known when the request is denied
    context.limit_decisions.append(decision)
    context.telemetry.limit_decision(decision.outcome, decision.limit)
