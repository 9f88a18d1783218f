"""Runs one request's job on the candidates of its route plan, one attempt at a time.

An attempt that failed before any output reached the client and that says so
(``AttemptFailed.retryable``: no ``accepted`` in time, a node stream that cannot be
written, a retryable worker ``error``) is retried on the next candidate not yet tried,
after a full-jitter backoff, while attempts, the replica's retry budget and the request's
deadline allow. A full node is skipped without counting as an attempt. Each attempt uses
its own attempt number, so a late answer of an abandoned attempt is dropped by the reply
reader, and its cancel mark never touches the next attempt.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from api_router.config.settings import RoutingSettings
from api_router.dispatch.dispatcher import AttemptFailed, NodeFull
from api_router.dispatch.protocol import Job
from api_router.errors import ApiError
from api_router.routing.breaker import Breakers
from api_router.routing.engine import Candidate, RoutePlan
from api_router.routing.node_health import NodeHealth
from api_router.routing.retry import RetryBudget, retry_delay_s
from api_router.usage.record import RouteAttempt

log = logging.getLogger(__name__)

T = TypeVar("T")
Attempt = Callable[[Job, NodeHealth], Awaitable[T]]


@dataclass(slots=True)
class Trail:
    """What the failover loop did, for the request's audit record, headers and metrics."""

    attempts: list[RouteAttempt] = field(default_factory=list)
    chosen: Candidate | None = None
    retries: int = 0
    budget_refused: bool = False


class Failover:
    def __init__(
        self,
        breakers: Breakers,
        budget: RetryBudget,
        settings: RoutingSettings,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._breakers = breakers
        self._budget = budget
        self._settings = settings
        self._rng = rng or random.Random()
        self._sleep = sleep

    async def run(self, job: Job, plan: RoutePlan, attempt: Attempt[T], trail: Trail) -> T:
        """The first successful attempt's result; else the last failure is raised."""
        self._budget.record_request()
        failure: ApiError | None = None
        tries = 0
        for candidate in plan.candidates:
            node_id = candidate.node.node_id
            if tries >= self._settings.max_attempts:
                break
            if not self._breakers.acquire(node_id):  # opened, or its probe taken, since planned
                continue
            tries += 1
            try:
                result = await attempt(dataclasses.replace(job, attempt=tries), candidate.node)
            except NodeFull as exc:
                self._breakers.release(node_id)
                tries -= 1
                failure = failure or exc
                continue
            except AttemptFailed as exc:
                trail.attempts.append(_note(candidate, exc.code))
                self._verdict(node_id, exc)
                failure = exc
                time_left_s = job.deadline_ms / 1000 - time.time()  # wall clock, like the job
                if not await self._may_retry(exc, tries, time_left_s, trail):
                    raise
                continue
            except BaseException:
                self._breakers.release(node_id)  # no verdict: the client left, or a bug
                raise
            self._breakers.success(node_id)
            trail.attempts.append(_note(candidate, None))
            trail.chosen = candidate
            return result
        if failure is None:
            raise ApiError("no_capacity", f"no node may take model {plan.model!r} now")
        raise failure

    def _verdict(self, node_id: str, error: AttemptFailed) -> None:
        if error.node_fault:
            self._breakers.failure(node_id)
        else:  # the node answered; the request was at fault
            self._breakers.success(node_id)

    async def _may_retry(
        self, error: AttemptFailed, tries: int, time_left_s: float, trail: Trail
    ) -> bool:
        if not error.retryable or tries >= self._settings.max_attempts:
            return False
        delay = retry_delay_s(tries, self._settings, time_left_s, self._rng)
        if delay is None:
            return False
        if not self._budget.try_spend():
            trail.budget_refused = True
            log.warning("retry budget spent; failure answered", extra={"code": error.code})
            return False
        trail.retries += 1
        await self._sleep(delay)
        return True


def _note(candidate: Candidate, error: str | None) -> RouteAttempt:
    node = candidate.node
    return RouteAttempt(node.node_id, node.pool, candidate.reason, error)
