"""Breaker state machine (injected clock), backoff bounds, retry budget, health margins."""

from __future__ import annotations

import random

import pytest

from api_router.config.settings import HealthSettings, RoutingSettings
from api_router.routing.breaker import Breakers
from api_router.routing.retry import RetryBudget, backoff_s, retry_delay_s
from api_router.routing.snapshot import node_state
from tests.support.stack import node_health


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_after_consecutive_failures_and_probes_once_when_half_open() -> None:
    clock = Clock()
    breakers = Breakers(5, 30.0, clock)
    changes: list[tuple[str, str]] = []
    breakers.on_change = lambda node, state: changes.append((node, state))
    for _ in range(4):
        breakers.failure("n")
    breakers.success("n")  # a success resets the count: failures must be consecutive
    for _ in range(4):
        breakers.failure("n")
    assert breakers.state("n") == "closed" and breakers.acquire("n")
    breakers.failure("n")
    assert breakers.state("n") == "open"
    assert not breakers.available("n") and not breakers.acquire("n")
    clock.now = 29.9
    assert breakers.state("n") == "open"
    clock.now = 30.0
    assert breakers.state("n") == "half_open" and breakers.available("n")
    assert breakers.acquire("n")  # the one probe
    assert not breakers.available("n") and not breakers.acquire("n")
    breakers.failure("n")  # probe failed: open again for a full period
    assert breakers.state("n") == "open"
    clock.now = 59.0
    assert breakers.state("n") == "open"
    clock.now = 60.0
    assert breakers.acquire("n")
    breakers.success("n")
    assert breakers.state("n") == "closed" and breakers.acquire("n") and breakers.acquire("n")
    assert changes == [
        ("n", "open"),
        ("n", "half_open"),
        ("n", "open"),
        ("n", "half_open"),
        ("n", "closed"),
    ]


def test_a_released_probe_goes_to_the_next_request() -> None:
    clock = Clock()
    breakers = Breakers(1, 1.0, clock)
    breakers.failure("n")
    clock.now = 1.0
    assert breakers.acquire("n")
    breakers.release("n")
    assert breakers.acquire("n")


@pytest.mark.parametrize("retry", range(1, 12))
def test_backoff_stays_within_full_jitter_bounds(retry: int) -> None:
    rng = random.Random(retry)
    bound = min(5.0, 0.1 * 2**retry)
    delays = [backoff_s(retry, 0.1, 5.0, rng) for _ in range(2000)]
    assert all(0.0 <= d <= bound for d in delays)
    assert max(delays) > 0.9 * bound  # the whole range is used (full jitter)


def test_a_retry_is_never_scheduled_past_the_deadline() -> None:
    rng = random.Random(3)
    settings = RoutingSettings()
    for _ in range(2000):
        delay = retry_delay_s(3, settings, 0.3, rng)
        assert delay is None or 0.0 <= delay < 0.3
    assert retry_delay_s(1, settings, 0.0, rng) is None


def test_retry_budget_allows_a_share_of_requests_over_a_sliding_window() -> None:
    clock = Clock()
    budget = RetryBudget(0.2, 60, min_retries=0, clock=clock)
    for _ in range(100):
        budget.record_request()
    assert sum(budget.try_spend() for _ in range(30)) == 20
    assert budget.rejected == 10
    clock.now = 30.0
    assert not budget.try_spend()  # still inside the minute
    clock.now = 61.0  # the requests and retries of second 0 left the window
    for _ in range(10):
        budget.record_request()
    assert sum(budget.try_spend() for _ in range(5)) == 2


def test_retry_budget_floor_lets_a_quiet_replica_retry() -> None:
    budget = RetryBudget(0.2, 60, min_retries=3, clock=Clock())
    budget.record_request()
    assert [budget.try_spend() for _ in range(4)] == [True, True, True, False]


def test_a_hot_node_comes_back_only_below_the_threshold_minus_the_margin() -> None:
    limits = HealthSettings()

    def state(previous: str | None, **fields: float) -> str:
        return node_state(node_health("n", last_seen=0.0, **fields), 1.0, limits, previous)  # type: ignore[arg-type]

    assert state("healthy", temp_celsius=76.0) == "too_hot"
    assert state("too_hot", temp_celsius=74.0) == "too_hot"
    assert state("too_hot", temp_celsius=70.0) == "healthy"
    assert state("healthy", temp_celsius=74.0) == "healthy"
    assert state("healthy", ram_percent=91.0) == "memory_pressure"
    assert state("memory_pressure", ram_percent=88.0) == "memory_pressure"
    assert state("memory_pressure", ram_percent=85.0) == "healthy"
