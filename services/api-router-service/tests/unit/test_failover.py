"""The failover loop on its own: the attempt, the backoff's sleep and the clocks of the
breakers and the retry budget are fakes at its seams; no Redis, no worker, no waiting."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field

import pytest

from api_router.chat import ChatMessage
from api_router.config.settings import RoutingSettings
from api_router.dispatch.dispatcher import AttemptFailed, NodeFull
from api_router.dispatch.failover import Failover, Trail
from api_router.dispatch.protocol import Job, JobPayload
from api_router.errors import ApiError
from api_router.routing.breaker import Breakers
from api_router.routing.engine import Candidate, RoutePlan
from api_router.routing.node_health import NodeHealth
from api_router.routing.retry import RetryBudget
from api_router.usage.record import RouteAttempt
from tests.support.stack import node_health


class TopOfRange(random.Random):
    """Full jitter at its ceiling, so every backoff is exactly min(cap, base * 2^retry)."""

    def uniform(self, a: float, b: float) -> float:
        return b


@dataclass
class FakeAttempts:
    """Each node answers with the outcome given for it (an error is raised); records the
    jobs it was handed."""

    outcomes: dict[str, str | BaseException]
    seen: list[tuple[str, int]] = field(default_factory=list)

    async def __call__(self, job: Job, node: NodeHealth) -> str:
        self.seen.append((node.node_id, job.attempt))
        outcome = self.outcomes[node.node_id]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


@dataclass
class Harness:
    settings: RoutingSettings = field(default_factory=RoutingSettings)
    budget: RetryBudget = field(default_factory=lambda: RetryBudget(0.2, 60, 10, lambda: 0.0))
    breakers: Breakers = field(default_factory=lambda: Breakers(5, 30.0, clock=lambda: 0.0))
    sleeps: list[float] = field(default_factory=list)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    async def run(
        self, attempts: FakeAttempts, *nodes: str, deadline_s: float = 60.0
    ) -> tuple[str, Trail]:
        failover = Failover(self.breakers, self.budget, self.settings, TopOfRange(), self.sleep)
        trail = Trail()
        result = await failover.run(job(deadline_s), plan(*nodes), attempts, trail)
        return result, trail


def job(deadline_s: float) -> Job:
    return Job(
        id="req_1",
        attempt=0,
        reply_to="replies",
        deadline_ms=int((time.time() + deadline_s) * 1000),
        model="m",
        stream=False,
        tenant="acme",
        traceparent="",
        payload=JobPayload([ChatMessage("user", "hi")]),
    )


def plan(*nodes: str) -> RoutePlan:
    candidates = (
        Candidate(node_health(n, pool=f"pool-{n}"), "failover" if i else "sticky")
        for i, n in enumerate(nodes)
    )
    return RoutePlan("m", tuple(candidates))


def failed(
    code: str = "upstream_timeout", *, retryable: bool = True, node_fault: bool = True
) -> AttemptFailed:
    return AttemptFailed(code, f"{code} on purpose", retryable=retryable, node_fault=node_fault)


async def test_the_first_candidate_answers_and_is_the_only_attempt() -> None:
    harness = Harness()
    attempts = FakeAttempts({"a": "from a", "b": "from b"})
    result, trail = await harness.run(attempts, "a", "b")
    assert result == "from a"
    assert attempts.seen == [("a", 1)]
    assert trail.attempts == [RouteAttempt("a", "pool-a", "sticky", None)]
    assert trail.chosen is not None and trail.chosen.node.node_id == "a"
    assert (trail.retries, trail.budget_refused, harness.sleeps) == (0, False, [])


async def test_a_retryable_failure_moves_on_with_a_new_attempt_number_after_a_backoff() -> None:
    harness = Harness()
    attempts = FakeAttempts({"a": failed(), "b": "from b"})
    result, trail = await harness.run(attempts, "a", "b")
    assert result == "from b"
    assert attempts.seen == [("a", 1), ("b", 2)]
    assert trail.attempts == [
        RouteAttempt("a", "pool-a", "sticky", "upstream_timeout"),
        RouteAttempt("b", "pool-b", "failover", None),
    ]
    assert trail.chosen is not None and trail.chosen.node.node_id == "b"
    assert trail.retries == 1
    assert harness.sleeps == [0.2]  # min(cap 5, base 0.1 * 2^1)


async def test_backoff_doubles_per_retry_and_attempts_stop_at_max_attempts() -> None:
    harness = Harness(settings=RoutingSettings(max_attempts=3))
    attempts = FakeAttempts({n: failed("upstream_error") for n in "abcd"})
    with pytest.raises(AttemptFailed) as raised:
        await harness.run(attempts, "a", "b", "c", "d")
    assert [node for node, _ in attempts.seen] == ["a", "b", "c"]
    assert harness.sleeps == [0.2, 0.4]  # no pause after the last allowed attempt
    assert raised.value.code == "upstream_error"


async def test_a_failure_that_is_not_retryable_is_answered_at_once() -> None:
    harness = Harness()
    refused = failed("invalid_request", retryable=False, node_fault=False)
    attempts = FakeAttempts({"a": refused, "b": "from b"})
    with pytest.raises(AttemptFailed) as raised:
        await harness.run(attempts, "a", "b")
    assert raised.value is refused
    assert attempts.seen == [("a", 1)]
    assert harness.sleeps == []


async def test_a_spent_retry_budget_answers_the_failure_and_says_so() -> None:
    harness = Harness(budget=RetryBudget(0.0, 60, 0, lambda: 0.0))
    attempts = FakeAttempts({"a": failed(), "b": "from b"})
    trail = Trail()
    failover = Failover(harness.breakers, harness.budget, harness.settings, TopOfRange())
    with pytest.raises(AttemptFailed):
        await failover.run(job(60.0), plan("a", "b"), attempts, trail)
    assert attempts.seen == [("a", 1)]
    assert (trail.budget_refused, trail.retries, harness.budget.rejected) == (True, 0, 1)


async def test_no_retry_when_the_backoff_would_not_end_before_the_deadline() -> None:
    harness = Harness()
    attempts = FakeAttempts({"a": failed(), "b": "from b"})
    with pytest.raises(AttemptFailed):
        await harness.run(attempts, "a", "b", deadline_s=0.1)  # the backoff is 0.2 s
    assert attempts.seen == [("a", 1)]
    assert harness.sleeps == []
    assert harness.budget.rejected == 0  # the budget was not even asked


async def test_a_full_node_is_skipped_without_counting_as_an_attempt() -> None:
    harness = Harness(settings=RoutingSettings(max_attempts=1))
    attempts = FakeAttempts({"a": NodeFull("a"), "b": "from b"})
    result, trail = await harness.run(attempts, "a", "b")
    assert result == "from b"
    assert attempts.seen == [("a", 1), ("b", 1)]  # b still gets attempt number 1
    assert trail.attempts == [RouteAttempt("b", "pool-b", "failover", None)]
    assert harness.sleeps == []


async def test_when_every_node_is_full_the_answer_is_no_capacity() -> None:
    attempts = FakeAttempts({"a": NodeFull("a"), "b": NodeFull("b")})
    with pytest.raises(NodeFull) as raised:
        await Harness().run(attempts, "a", "b")
    assert (raised.value.code, raised.value.status) == ("no_capacity", 503)
    assert str(raised.value) == "node a is full"  # the first refusal is the one answered


async def test_a_node_whose_breaker_opened_since_planning_is_not_tried() -> None:
    harness = Harness(breakers=Breakers(1, 30.0, clock=lambda: 0.0))
    harness.breakers.failure("a")
    attempts = FakeAttempts({"a": "from a", "b": "from b"})
    result, _ = await harness.run(attempts, "a", "b")
    assert result == "from b"
    assert attempts.seen == [("b", 1)]


async def test_a_plan_with_no_node_left_is_no_capacity() -> None:
    harness = Harness(breakers=Breakers(1, 30.0, clock=lambda: 0.0))
    harness.breakers.failure("a")
    with pytest.raises(ApiError) as raised:
        await harness.run(FakeAttempts({"a": "from a"}), "a")
    assert raised.value.code == "no_capacity"
    assert raised.value.message == "no node may take model 'm' now"


async def test_node_faults_count_against_the_breaker_and_request_faults_do_not() -> None:
    harness = Harness(breakers=Breakers(1, 30.0, clock=lambda: 0.0))
    attempts = FakeAttempts(
        {"sick": failed(node_fault=True), "strict": failed(node_fault=False), "ok": "done"}
    )
    result, _ = await harness.run(attempts, "sick", "strict", "ok")
    assert result == "done"
    assert harness.breakers.state("sick") == "open"
    assert harness.breakers.state("strict") == "closed"


async def test_a_cancelled_attempt_gives_back_the_half_open_probe() -> None:
    now = [0.0]
    breakers = Breakers(1, 30.0, clock=lambda: now[0])
    breakers.failure("a")
    now[0] = 31.0  # half-open: one probe may go
    harness = Harness(breakers=breakers)
    with pytest.raises(asyncio.CancelledError):
        await harness.run(FakeAttempts({"a": asyncio.CancelledError()}), "a")
    assert breakers.acquire("a")  # the probe went back, so the next request may probe
