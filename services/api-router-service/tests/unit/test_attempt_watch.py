"""The attempt watch on its own: waiters, the health snapshot and the clock are plain
values, so each reason an accepted attempt is lost is checked without waiting."""

from __future__ import annotations

import pytest

from api_router.config.settings import HealthSettings
from api_router.dispatch.attempt_failure import AttemptFailed
from api_router.dispatch.attempt_watch import AttemptWatch
from api_router.dispatch.reply_reader import ReplyWaiter
from api_router.routing.snapshot import RoutingSnapshot
from tests.support.stack import node_health

NOW = 1_000.0


def snapshot(**last_seen: float) -> RoutingSnapshot:
    """Nodes by id with their last beat, judged at epoch ``NOW`` (fresh for 15 s)."""
    nodes = [node_health(node_id, last_seen=seen) for node_id, seen in last_seen.items()]
    return RoutingSnapshot.build(nodes, NOW, HealthSettings())


def waiter(node_id: str, idle_s: float | None, silent_s: float) -> ReplyWaiter:
    """An accepted attempt on ``node_id`` whose last event came ``silent_s`` ago."""
    waiting = ReplyWaiter(f"req_{node_id}", 1, node_id)
    waiting.watch(idle_s)
    waiting.last_event_at = NOW - silent_s
    return waiting


async def reason(waiting: ReplyWaiter) -> str:
    with pytest.raises(AttemptFailed) as lost:
        await waiting.next(0.0)
    assert (lost.value.code, lost.value.retryable, lost.value.node_fault) == (
        "upstream_timeout",
        True,
        True,
    )
    return lost.value.message


async def test_each_reason_an_accepted_attempt_is_lost() -> None:
    silent = waiter("a", 10.0, silent_s=10.0)
    talking = waiter("a", 10.0, silent_s=9.0)
    stale = waiter("old", 10.0, silent_s=0.0)
    gone = waiter("gone", 10.0, silent_s=0.0)
    # A worker that predates keepalives for whole answers: only its node's health counts.
    quiet_old_worker = waiter("a", None, silent_s=60.0)
    waiters = [silent, talking, stale, gone, quiet_old_worker]
    watch = AttemptWatch(lambda: waiters, lambda: snapshot(a=NOW, old=NOW - 16), lambda: NOW)
    assert watch.check() == 3
    assert await reason(silent) == "node a sent nothing for 10 s"
    assert await reason(stale) == "node old stopped reporting its health"
    assert await reason(gone) == "node gone left the health registry"
    assert not talking.interrupted and not quiet_old_worker.interrupted
    assert watch.check() == 0  # each loss is told once


async def test_attempts_not_yet_accepted_are_left_to_the_accept_timeout() -> None:
    pending = ReplyWaiter("req_1", 1, "gone")
    watch = AttemptWatch(lambda: [pending], lambda: snapshot(), lambda: NOW)
    assert watch.check() == 0
    assert not pending.interrupted


async def test_a_drained_node_is_not_lost_it_answers_its_jobs_itself() -> None:
    drained = RoutingSnapshot.build(
        [node_health("a", last_seen=NOW, available=False)], NOW, HealthSettings()
    )
    waiting = waiter("a", 10.0, silent_s=1.0)
    assert AttemptWatch(lambda: [waiting], lambda: drained, lambda: NOW).check() == 0
