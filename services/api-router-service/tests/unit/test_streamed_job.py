"""The gateway's reading of a streamed job: order, completeness, and when it gives up."""

from __future__ import annotations

import time

import pytest

from api_router.chat import ChatMessage, Completion, Usage
from api_router.dispatch.attempt_failure import AttemptFailed, attempt_lost
from api_router.dispatch.protocol import (
    ChunkData,
    ErrorData,
    Event,
    Job,
    JobPayload,
    accepted,
    chunk,
    done,
    failed,
)
from api_router.dispatch.reply_reader import ReplyWaiter
from api_router.dispatch.streamed_job import StreamedJob
from api_router.errors import ApiError, ShuttingDown
from tests.support.stack import node_health

JOB = Job(
    id="req_1",
    attempt=1,
    reply_to="r",
    deadline_ms=int((time.time() + 3600) * 1000),
    model="m",
    stream=True,
    tenant="t",
    traceparent="",
    payload=JobPayload([ChatMessage("user", "hi")]),
)
COMPLETION = Completion(ChatMessage("assistant", "ab"), "stop", Usage(1, 2))


class Released:
    def __init__(self) -> None:
        self.calls: list[tuple[str, bool]] = []

    def __call__(self, job: Job, cancel: bool) -> None:
        self.calls.append((job.id, cancel))


def streamed_job(*events: Event, max_events: int = 0) -> tuple[StreamedJob, Released]:
    job, released, _ = watched_job(*events, max_events=max_events)
    return job, released


def watched_job(*events: Event, max_events: int = 0) -> tuple[StreamedJob, Released, ReplyWaiter]:
    waiter = ReplyWaiter(JOB.id, 1, "n1", max_events)
    for event in events:
        waiter.deliver(event)
    released = Released()
    now = time.perf_counter()
    return StreamedJob(JOB, node_health("n1"), waiter, (now, now), released), released, waiter


def text(data: str, tokens: int = 1) -> ChunkData:
    return ChunkData(data, tokens)


async def test_text_then_the_completion_in_order_and_tokens_counted() -> None:
    job, released = streamed_job(
        chunk(JOB, "n1", 1, text("a")),
        chunk(JOB, "n1", 2, ChunkData("")),  # a keepalive
        chunk(JOB, "n1", 3, text("b", 2)),
        done(JOB, "n1", 4, COMPLETION),
    )
    assert await job.next(1.0) == ["a", "b", COMPLETION]
    assert job.finished and job.tokens == 3
    outcomes: list[tuple[str, str]] = []
    job.close("ok", lambda node, outcome, _s: outcomes.append((node, outcome)))
    assert released.calls == [("req_1", False)]  # finished: nothing to cancel
    assert outcomes == [("n1", "done")]


async def test_the_text_before_an_error_is_handed_over_first() -> None:
    error = ErrorData("backend_error", "boom", retryable=True)
    job, _ = streamed_job(chunk(JOB, "n1", 1, text("a")), failed(JOB.id, 1, "n1", 2, error))
    assert await job.next(1.0) == ["a"]
    with pytest.raises(ApiError) as raised:
        await job.next(1.0)
    assert raised.value.code == "upstream_error"
    assert "backend_error: boom" in raised.value.message
    # Text went out: final, whatever the worker says, so nobody hands the stream on.
    assert not isinstance(raised.value, AttemptFailed)


async def test_a_retryable_error_before_any_text_may_go_to_another_node() -> None:
    error = ErrorData("shutting_down", "the worker stopped", retryable=True)
    job, _ = streamed_job(chunk(JOB, "n1", 1, ChunkData("")), failed(JOB.id, 1, "n1", 2, error))
    with pytest.raises(AttemptFailed) as raised:
        await job.next(1.0)
    assert (raised.value.retryable, raised.value.node_fault) == (True, True)


async def test_a_lost_attempt_may_go_to_another_node_only_before_any_text() -> None:
    before, _, waiter = watched_job(chunk(JOB, "n1", 1, ChunkData("")))
    waiter.interrupt(attempt_lost("n1", "sent nothing for 10 s"))
    assert await before.next(1.0) == []  # the keepalive first, then the loss
    with pytest.raises(AttemptFailed) as lost:
        await before.next(1.0)
    assert lost.value.message == "node n1 sent nothing for 10 s"

    after, _, waiter = watched_job(chunk(JOB, "n1", 1, text("a")))
    assert await after.next(1.0) == ["a"]
    waiter.interrupt(attempt_lost("n1", "left the health registry"))
    with pytest.raises(ApiError) as final:
        await after.next(1.0)
    assert not isinstance(final.value, AttemptFailed)
    assert (final.value.code, final.value.message) == (
        "upstream_timeout",
        "node n1 left the health registry",
    )


async def test_a_gap_in_seq_is_an_error_not_a_silently_shorter_answer() -> None:
    job, _ = streamed_job(chunk(JOB, "n1", 1, text("a")), chunk(JOB, "n1", 3, text("c")))
    assert await job.next(1.0) == ["a"]
    with pytest.raises(ApiError, match="lost part of the stream"):
        await job.next(1.0)


async def test_an_error_ends_the_stream_whatever_its_seq() -> None:
    # A worker stopped mid-stream answers shutting_down with seq 1.
    error = ErrorData("shutting_down", "the worker stopped", retryable=True)
    job, _ = streamed_job(
        chunk(JOB, "n1", 1, text("a")),
        chunk(JOB, "n1", 2, text("b")),
        failed(JOB.id, 1, "n1", 1, error),
    )
    assert await job.next(1.0) == ["a", "b"]
    with pytest.raises(ApiError, match="shutting_down"):
        await job.next(1.0)


async def test_a_job_started_over_after_text_went_out_is_not_retried() -> None:
    job, released = streamed_job(
        chunk(JOB, "n1", 1, text("a")), accepted(JOB, "n1", "other-consumer")
    )
    assert await job.next(1.0) == ["a"]
    with pytest.raises(ApiError, match="restarted the job mid-stream"):
        await job.next(1.0)
    job.close("upstream_error", lambda *_: None)
    assert released.calls == [("req_1", True)]  # unfinished: the worker is told to stop


async def test_a_job_started_over_before_any_text_carries_on() -> None:
    job, _ = streamed_job(
        chunk(JOB, "n1", 1, ChunkData("")),  # a keepalive from the first worker
        accepted(JOB, "n1", "other"),
        chunk(JOB, "n1", 1, text("a")),
    )
    assert await job.next(1.0) == ["a"]


async def test_nothing_within_the_wait_is_an_empty_list_for_a_heartbeat() -> None:
    job, _ = streamed_job()
    assert await job.next(0.0) == []
    assert not job.finished


async def test_a_shutdown_ends_the_stream_with_its_own_error() -> None:
    job, released, waiter = watched_job(chunk(JOB, "n1", 1, text("a")))
    waiter.interrupt(ShuttingDown())
    assert await job.next(1.0) == ["a"]
    with pytest.raises(ShuttingDown):
        await job.next(1.0)
    job.close("cancelled", lambda *_: None)
    assert released.calls == [("req_1", True)]  # its worker is told to stop


def test_a_full_buffer_drops_later_events_and_says_so() -> None:
    waiter = ReplyWaiter(JOB.id, 1, max_events=2)
    for seq in (1, 2, 3):
        waiter.deliver(chunk(JOB, "n1", seq, text("x")))
    assert waiter.overflowed.is_set()
    assert [e.seq for e in waiter.ready()] == [1, 2]


async def test_an_interruption_is_not_lost_when_the_buffer_is_full() -> None:
    waiter = ReplyWaiter(JOB.id, 1, "n1", max_events=1)
    waiter.deliver(chunk(JOB, "n1", 1, text("x")))
    waiter.interrupt(ShuttingDown())
    with pytest.raises(ShuttingDown):
        await waiter.next(1.0)
