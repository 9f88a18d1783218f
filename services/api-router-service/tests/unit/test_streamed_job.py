"""The gateway's reading of a streamed job: order, completeness, and when it gives up."""

from __future__ import annotations

import time

import pytest

from api_router.chat import ChatMessage, Completion, Usage
from api_router.config.settings import StreamSettings
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
from api_router.errors import ApiError
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


def streamed_job(
    *events: Event, max_events: int = 0, idle_s: float = 3.0
) -> tuple[StreamedJob, Released]:
    waiter = ReplyWaiter(JOB.id, 1, max_events)
    for event in events:
        waiter.deliver(event)
    released = Released()
    now = time.perf_counter()
    settings = StreamSettings(idle_timeout_s=idle_s)
    return StreamedJob(JOB, node_health("n1"), waiter, settings, (now, now), released), released


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
    error = ErrorData("backend_error", "boom")
    job, _ = streamed_job(chunk(JOB, "n1", 1, text("a")), failed(JOB.id, 1, "n1", 2, error))
    assert await job.next(1.0) == ["a"]
    with pytest.raises(ApiError) as raised:
        await job.next(1.0)
    assert raised.value.code == "upstream_error"
    assert "backend_error: boom" in raised.value.message


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


async def test_nothing_within_the_wait_is_an_empty_list_then_a_silent_worker_times_out() -> None:
    job, _ = streamed_job(idle_s=0.05)
    assert await job.next(0.0) == []
    with pytest.raises(ApiError) as raised:
        await job.next(1.0)
    assert raised.value.code == "upstream_timeout"


def test_a_full_buffer_drops_later_events_and_says_so() -> None:
    waiter = ReplyWaiter(JOB.id, 1, max_events=2)
    for seq in (1, 2, 3):
        waiter.deliver(chunk(JOB, "n1", seq, text("x")))
    assert waiter.overflowed.is_set()
    assert [e.seq for e in waiter.ready()] == [1, 2]
