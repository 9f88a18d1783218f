"""Limits around one request: admit before the job is dispatched, settle once it has ended.

Both APIs reach a node through ``routed_chat``, which admits every request with
:func:`admit` and settles it exactly once through the returned :class:`Admitted`: a whole
answer when it arrives or fails, a stream when it ends, however it ends (done, error,
cancelled, a client gone). Settlement runs off the response path.
"""

from __future__ import annotations

from api_router.api.request_context import RequestContext
from api_router.chat import Usage
from api_router.limiter.admission import Admission, AdmissionRequest, Grant
from api_router.limiter.decision import LimitDecision


class Admitted:
    """One admitted request, until it is settled."""

    __slots__ = ("_admission", "_context", "_grant", "_settled")

    def __init__(self, admission: Admission, context: RequestContext, grant: Grant) -> None:
        self._admission = admission
        self._context = context
        self._grant = grant
        self._settled = False

    def settle(self, usage: Usage | None, *, accepted: bool) -> None:
        """Replace the reservation with ``usage`` (None: nothing was generated) and release
        the lease. ``accepted=False``: no worker took the job, so everything is given back.
        Only the first call counts."""
        if self._settled:
            return
        self._settled = True
        self._admission.settle(self._grant, usage, accepted=accepted)
        if usage is not None:
            self._note(usage)

    def _note(self, usage: Usage) -> None:
        """Actual tokens and what they were charged (at the model's prices), for the usage
        record: the same charge as the budget's and the month's counters."""
        facts = self._context.usage
        facts.prompt_tokens, facts.completion_tokens = usage.prompt_tokens, usage.completion_tokens
        facts.cost = self._grant.cost(usage)


async def admit(
    admission: Admission,
    context: RequestContext,
    model: str,
    prompt_tokens: int,
    max_tokens: int | None,
) -> Admitted:
    """Admit the request (raising its 402/429/503, or waiting in the plan's queue):
    ``prompt_tokens`` is the estimate of its input, ``max_tokens`` what it may generate
    (None: the plan's default reservation; 0 for embeddings, which generate none)."""
    principal = context.authenticated()
    request = AdmissionRequest(
        request_id=context.request_id,
        tenant=principal.tenant,
        key_id=principal.key_id,
        model=model,
        prompt_tokens=prompt_tokens,
        max_tokens=max_tokens,
    )
    grant = await admission.acquire(request, lambda decision: _record(context, decision))
    context.plan = grant.plan
    context.response_headers.update(grant.headers)
    return Admitted(admission, context, grant)


def _record(context: RequestContext, decision: LimitDecision) -> None:
    context.plan = decision.plan or context.plan  # also known when the request is denied
    context.limit_decisions.append(decision)
    context.telemetry.limit_decision(decision.outcome, decision.limit)
