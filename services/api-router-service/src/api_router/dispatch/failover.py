"""Runs one request's job on the candidates of its route plan, one attempt at a time.

An attempt that failed before any output reached the client and that says so
(``AttemptFailed.retryable``: no ``accepted`` in time, a node stream that cannot be
written, a retryable worker ``error``, an accepted attempt lost because its worker fell
silent or its node left) is retried on the next candidate not yet tried, after a
full-jitter backoff, while attempts, the replica's retry budget and the request's deadline
allow. A full node is skipped without counting as an attempt. Each attempt uses its own
attempt number, so a late answer of an abandoned attempt is dropped by the reply reader,
and its cancel mark never touches the next attempt.

A stream's attempt succeeds once accepted (its 200 goes out then), but may still be lost
before its first text: :meth:`FailoverRun.resume` then carries on with the next candidate,
under the same rules.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from api_router.config.settings import RoutingSettings
from api_router.dispatch.attempt_failure import AttemptFailed, NodeFull
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
    """The retry rules a replica applies to every request: its breakers, its retry budget,
    the routing settings and the backoff's randomness and sleep (seams for tests)."""

    def __init__(
        self,
        breakers: Breakers,
        budget: RetryBudget,
        settings: RoutingSettings,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.breakers = breakers
        self.budget = budget
        self.settings = settings
        self.rng = rng or random.Random()
        self.sleep = sleep

    def start(self, job: Job, plan: RoutePlan, attempt: Attempt[T], trail: Trail) -> FailoverRun[T]:
        """A request's walk through ``plan``; ``FailoverRun.next`` makes the attempts."""
        self.budget.record_request()
        return FailoverRun(self, job, plan, attempt, trail)

    async def run(self, job: Job, plan: RoutePlan, attempt: Attempt[T], trail: Trail) -> T:
        """The first successful attempt's result; else the last failure is raised."""
        return await self.start(job, plan, attempt, trail).next()


class FailoverRun(Generic[T]):
    """One request's attempts, in the order of its plan, each node at most once."""

    def __init__(
        self, rules: Failover, job: Job, plan: RoutePlan, attempt: Attempt[T], trail: Trail
    ) -> None:
        self._rules = rules
        self._job = job
        self._plan = plan
        self._attempt = attempt
        self._trail = trail
        self._candidates: Iterator[Candidate] = iter(plan.candidates)
        self._tries = 0
        self._failure: ApiError | None = None

    async def next(self) -> T:
        """The next successful attempt's result; else the last failure is raised."""
        breakers, trail = self._rules.breakers, self._trail
        for candidate in self._candidates:
            node_id = candidate.node.node_id
            if self._tries >= self._rules.settings.max_attempts:
                break
            if not breakers.acquire(node_id):  # opened, or its probe taken, since planned
                continue
            self._tries += 1
            try:
                result = await self._attempt(
                    dataclasses.replace(self._job, attempt=self._tries), candidate.node
                )
            except NodeFull as exc:
                breakers.release(node_id)
                self._tries -= 1
                self._failure = self._failure or exc
                continue
            except AttemptFailed as exc:
                trail.attempts.append(_note(candidate, exc.code))
                if exc.node_fault:
                    breakers.failure(node_id)
                else:  # the node answered; the request was at fault
                    breakers.success(node_id)
                await self._go_on_after(exc)
                continue
            except BaseException:
                breakers.release(node_id)  # no verdict: the client left, or a bug
                raise
            breakers.success(node_id)
            trail.attempts.append(_note(candidate, None))
            trail.chosen = candidate
            return result
        if self._failure is None:
            raise ApiError("no_capacity", f"no node may take model {self._plan.model!r} now")
        raise self._failure

    async def resume(self, failure: AttemptFailed) -> T:
        """The last successful attempt failed after all, before any output reached the
        client (a stream lost before its first text; its breaker verdict is given where it
        ended): go on to the next candidate, or raise ``failure``."""
        chosen = self._trail.chosen
        if chosen is not None:
            self._trail.attempts[-1] = _note(chosen, failure.code)
            self._trail.chosen = None
        await self._go_on_after(failure)
        return await self.next()

    async def _go_on_after(self, failure: AttemptFailed) -> None:
        """Raise ``failure`` unless another attempt may be made; pause for its backoff."""
        self._failure = failure
        settings = self._rules.settings
        if not failure.retryable or self._tries >= settings.max_attempts:
            raise failure
        time_left_s = self._job.deadline_ms / 1000 - time.time()  # wall clock, like the job
        delay = retry_delay_s(self._tries, settings, time_left_s, self._rules.rng)
        if delay is None:
            raise failure
        if not self._rules.budget.try_spend():
            self._trail.budget_refused = True
            log.warning("retry budget spent; failure answered", extra={"code": failure.code})
            raise failure
        self._trail.retries += 1
        await self._rules.sleep(delay)


def _note(candidate: Candidate, error: str | None) -> RouteAttempt:
    node = candidate.node
    return RouteAttempt(node.node_id, node.pool, candidate.reason, error)
